"""Notification channels other than signed JSON: Slack, Microsoft Teams and email messages."""

from sftphook.channels.email import SMTPError, SMTPPermanentError, SMTPSender, parse_recipients
from sftphook.channels.messages import Notice, describe_event, describe_ping
from sftphook.channels.slack import slack_body
from sftphook.channels.teams import teams_body

__all__ = [
    "Notice",
    "SMTPError",
    "SMTPPermanentError",
    "SMTPSender",
    "describe_event",
    "describe_ping",
    "parse_recipients",
    "slack_body",
    "teams_body",
]
