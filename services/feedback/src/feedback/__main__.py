"""``python -m feedback``: settings from the environment, then serve."""

from seminarops_shared.service import run_service

from .app import create_app
from .settings import FeedbackSettings


def main() -> None:
    run_service(FeedbackSettings(), create_app)


if __name__ == "__main__":
    main()
