"""W&B's settings checked before anything starts: a ``WANDB_*`` variable wandb would reject is one line.

A mistyped setting (``WANDB_MODE=sideways``, ``WANDB_BASE_URL='not a url'``) is a mistake
to fix, not a reason to log somewhere the user did not ask for: it is an error naming the
variable, its value and what wandb accepts.
"""

from __future__ import annotations

import os
import re

from ..errors import UsageError

DEFAULT_HOST = "https://api.wandb.ai"
# Added to wandb's own words about a rejected value.
_SETTING_HINTS = {
    "WANDB_MODE": "unset, the run is online when W&B is reachable and offline otherwise",
    "WANDB_BASE_URL": f"the W&B server's address, e.g. {DEFAULT_HOST} (the default) or http://localhost:8080",
}


class WandbSettingError(UsageError):
    """A W&B setting (a ``WANDB_*`` variable, a logger option) that wandb rejects; the message names it."""


def check_wandb_settings() -> None:
    """Raise :class:`WandbSettingError` for the first ``WANDB_*`` variable wandb's settings reject.

    wandb checks its settings (pydantic) only inside ``wandb.init``, when the fit has
    started, and reports a bad one as a validation traceback. Here they go through the
    same validation before anything starts. ``WANDB_MODE`` is read without regard to
    case or spaces, as wandb's own code compares it; an empty value that wandb rejects
    is taken as unset (``WANDB_MODE= cmd`` in a shell) and removed.

    Raises:
        WandbSettingError: Names the variable, its value (not a secret's) and what is accepted.
    """
    import pydantic
    import wandb
    from wandb.errors import UsageError as WandbUsageError

    mode = os.environ.get("WANDB_MODE")
    if mode is not None and mode != mode.strip().lower():
        os.environ["WANDB_MODE"] = mode.strip().lower()
    for name, value in sorted(os.environ.items()):
        if not name.startswith("WANDB_"):
            continue
        try:
            wandb.Settings().update_from_env_vars({name: value})
        except (pydantic.ValidationError, WandbUsageError) as error:
            if not value.strip():
                del os.environ[name]
                continue
            raise WandbSettingError(_setting_message(name, value, error)) from None


def _setting_message(name: str, value: str, error: Exception) -> str:
    import pydantic

    detail = error.errors()[0]["msg"] if isinstance(error, pydantic.ValidationError) and error.errors() else str(error)
    detail = re.sub(r"^(Value error, |Input should be )", lambda m: "" if m[1].startswith("Value") else "expected ",
                    " ".join(detail.split()))
    shown = "(hidden)" if re.search(r"KEY|TOKEN|SECRET|PASSWORD", name) else repr(value)
    hint = f" ({_SETTING_HINTS[name]})" if name in _SETTING_HINTS else ""
    return f"{name}={shown} is not a valid W&B setting: {detail}{hint}; fix or unset {name}"
