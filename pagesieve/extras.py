"""Optional extras (pyproject's optional-dependencies): one clear line naming the extra to install
when a module of one is missing, not a traceback."""
from __future__ import annotations

import importlib.util

# module -> the extra that installs it
EXTRAS = {"trafilatura": "baselines", "justext": "baselines", "lxml_html_clean": "baselines",
          "matplotlib": "baselines", "datatrove": "datatrove", "orjson": "datatrove"}


class MissingExtra(ModuleNotFoundError):
    """An optional module is not installed; the message says which extra installs it."""


def install_hint(module: str) -> str:
    extra = EXTRAS.get(module.split(".")[0])
    return f"pip install 'pagesieve[{extra}]'" if extra else f"pip install {module}"


def require(what: str, *modules: str):
    """Raise MissingExtra, before any work is done, when a module that `what` needs is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(f"{what} needs {module}, which is not installed: {install_hint(module)}", name=module)


def missing_extra_message(error: ImportError) -> str | None:
    """The one-line message for an optional module that failed to import, None for any other module."""
    if isinstance(error, MissingExtra):
        return str(error)
    name = (getattr(error, "name", None) or "").split(".")[0]
    if isinstance(error, ModuleNotFoundError) and name in EXTRAS:
        return f"{name} is not installed: {install_hint(name)}"
    return None
