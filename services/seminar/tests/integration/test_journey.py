"""The participant journey on the seminar side: how freed seats are given and who may
register, kept by the seminar, answered by GET, carried by ``seminar.scheduled.v1``."""

from __future__ import annotations

from typing import Any

import pytest

from seminarops_devtools.testing.polling import eventually
from seminarops_devtools.testing.stack import running

from ..conftest import OPERATOR, AppFactory, Body, Published, create_seminar

pytestmark = pytest.mark.integration

# The eTwinning Plus countries, as etwinning.net lists them ("News from eTwinning Plus -
# Georgia and Lebanon"), given in lower case and twice in part.
ETWINNING_PLUS = ["am", "AZ", "ge", "JO", "lb", "MD", "tn", "UA", "Ua", "am"]


async def test_promotion_offer_hours_and_eligible_countries_round_trip(
    make_app: AppFactory, seminar_body: Body, published: Published
) -> None:
    async with running(make_app()) as client:
        offered = await create_seminar(
            client,
            seminar_body(
                programme="etwinning_plus",
                promotion="offer",
                eligible_countries=ETWINNING_PLUS,
            ),
        )
        plain = await create_seminar(client, seminar_body())
        short_offer = await create_seminar(client, seminar_body(promotion="offer", offer_hours=6))
        read = (await client.get(f"/v1/seminars/{offered['id']}")).json()
        events = await eventually(
            lambda: published("seminar.scheduled.v1"),
            until=lambda e: len(e) >= 3,
            what="three scheduled events",
        )

    countries = ["AM", "AZ", "GE", "JO", "LB", "MD", "TN", "UA"]
    assert (read["promotion"], read["offer_hours"], read["eligible_countries"]) == (
        "offer",
        48,
        countries,
    )
    assert read == offered
    assert (plain["promotion"], plain["offer_hours"], plain["eligible_countries"]) == (
        "automatic",
        None,
        None,
    )
    assert short_offer["offer_hours"] == 6
    by_id = {e.subject: e.data for e in events}
    assert by_id[offered["id"]]["promotion"] == "offer"
    assert by_id[offered["id"]]["offer_hours"] == 48
    assert by_id[offered["id"]]["eligible_countries"] == countries
    assert by_id[plain["id"]]["promotion"] == "automatic"
    assert by_id[plain["id"]]["eligible_countries"] is None
    assert by_id[short_offer["id"]]["offer_hours"] == 6


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"offer_hours": 12}, "only with promotion 'offer'"),
        ({"promotion": "offer", "offer_hours": 0}, "offer_hours"),
        ({"promotion": "offer", "offer_hours": 169}, "offer_hours"),
        ({"promotion": "later"}, "promotion"),
        ({"eligible_countries": []}, "eligible_countries"),
        ({"eligible_countries": ["XX"]}, "not an ISO 3166-1 alpha-2 country code"),
        ({"eligible_countries": ["UKR"]}, "eligible_countries"),
        ({"eligible_countries": "UA"}, "eligible_countries"),
    ],
)
async def test_bad_journey_settings_are_a_422_and_store_nothing(
    make_app: AppFactory, seminar_body: Body, overrides: dict[str, Any], says: str
) -> None:
    async with running(make_app()) as client:
        response = await client.post(
            "/v1/seminars", json=seminar_body(**overrides), headers=OPERATOR
        )
        listed = (await client.get("/v1/seminars")).json()["items"]
    assert response.status_code == 422, response.text
    assert says in response.text
    assert listed == []


async def test_a_season_file_carries_the_journey_columns(make_app: AppFactory) -> None:
    season = (
        "id,title,kind,programme,starts_at,ends_at,timezone,capacity,language,"
        "promotion,offer_hours,eligible_countries\n"
        "jr-offer,Plus,learning_event,etwinning_plus,2024-10-08T17:00,2024-10-08T18:30,"
        "Europe/Kyiv,40,uk,offer,24,am;GE; UA;ge\n"
        "jr-plain,Plain,online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,"
        "Europe/Brussels,40,en,,,\n"
        "jr-bad,Bad,online_seminar,etwinning,2024-10-08T17:00,2024-10-08T18:30,"
        "Europe/Brussels,40,en,automatic,24,XX\n"
    )
    headers = {**OPERATOR, "Content-Type": "text/csv"}
    async with running(make_app()) as client:
        response = await client.post("/v1/seminars/import", content=season, headers=headers)
        offered = (await client.get("/v1/seminars/jr-offer")).json()
        plain = (await client.get("/v1/seminars/jr-plain")).json()
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert [r["status"] for r in rows] == ["created", "created", "rejected"]
    assert any("ISO 3166-1" in reason for reason in rows[2]["reasons"])
    assert (offered["promotion"], offered["offer_hours"], offered["eligible_countries"]) == (
        "offer",
        24,
        ["AM", "GE", "UA"],
    )
    assert (plain["promotion"], plain["offer_hours"], plain["eligible_countries"]) == (
        "automatic",
        None,
        None,
    )
