"""``python -m registration``: settings from the environment, then serve."""

from seminarops_shared.service import run_service

from .app import create_app
from .settings import RegistrationSettings


def main() -> None:
    run_service(RegistrationSettings(), create_app)


if __name__ == "__main__":
    main()
