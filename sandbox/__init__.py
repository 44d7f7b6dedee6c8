"""A faithful local Microsoft 365 tenant (sign-in, Graph, Exchange admin API, SMTP submission) and
Slack workspace on loopback, with TLS from its own CA.

Imported only by tests, the demo and the ``emaildoctor sandbox`` command. Its specification is
``shared/reference/exchange-online.md``; behaviour the reference marks UNCONFIRMED is a setting.
"""
