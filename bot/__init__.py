"""The Slack bot: `/emailtest`, approvals and grants from chat, time-bound delegation, scheduled audits, and the
durable store (requests, the hash-chained audit log, snapshots, retry keys).

Built on slack-bolt's AsyncApp (`bot.app.create_app`); only this package imports slack_bolt and slack_sdk.
It calls the core (`plugin`) and Microsoft 365 (`graph`); nothing calls it.
"""
