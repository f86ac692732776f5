"""Who may call the routes about one person (both routers use them).

``PersonalCaller``: operators and platform systems act for everyone; a participant is
admitted, and each route then calls ``caller.may_act_for(participant_id)`` before it
reads or changes anything of that person's (403 ``not_your_data`` otherwise).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from seminarops_shared.auth import Caller, require_role
from seminarops_shared.events.vocabulary import Identifier
from seminarops_shared.settings import Role

PathId = Annotated[Identifier, Path()]

# One dependency object: a route that also lists it in ``dependencies`` (to run it
# before another dependency) resolves it once per request.
personal = require_role(Role.PLATFORM, Role.OPERATOR, Role.PARTICIPANT)
PersonalCaller = Annotated[Caller, Depends(personal)]
