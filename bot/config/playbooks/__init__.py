"""SOP playbooks: YAML files in ``sop_templates/`` that drive each group's welcome,
touch sequence and quiet hours. See docs/playbooks.md for the format and
models.py for how to add a section.
"""

from bot.config.playbooks.cli import check_command, schema_command
from bot.config.playbooks.loader import (
    PlaybookIssue,
    PlaybookLoadError,
    PlaybookSet,
    PlaybookStore,
    ReloadResult,
    load_playbooks,
)
from bot.config.playbooks.models import (
    AppliesTo,
    CustomerGroupTemplate,
    Playbook,
    PrivateWelcome,
    QuietHours,
    TouchSequence,
    TouchStep,
    WelcomeSection,
)
from bot.config.playbooks.render import (
    PRIVATE_WELCOME_VARS,
    TOUCH_VARS,
    WELCOME_VARS,
    GroupVars,
    TouchMemberVars,
    WelcomeMemberVars,
    check_template,
    eval_condition,
    format_names,
    private_welcome_variables,
    render_text,
    touch_variables,
    welcome_variables,
)

__all__ = [
    "PRIVATE_WELCOME_VARS",
    "TOUCH_VARS",
    "WELCOME_VARS",
    "AppliesTo",
    "CustomerGroupTemplate",
    "GroupVars",
    "Playbook",
    "PlaybookIssue",
    "PlaybookLoadError",
    "PlaybookSet",
    "PlaybookStore",
    "PrivateWelcome",
    "QuietHours",
    "ReloadResult",
    "TouchMemberVars",
    "TouchSequence",
    "TouchStep",
    "WelcomeMemberVars",
    "WelcomeSection",
    "check_command",
    "check_template",
    "eval_condition",
    "format_names",
    "load_playbooks",
    "private_welcome_variables",
    "render_text",
    "schema_command",
    "touch_variables",
    "welcome_variables",
]
