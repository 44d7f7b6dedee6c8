"""The emaildoctor core: email configuration model, sender resolution, SMTP probe and diagnosis.

Knows nothing of Slack or of Microsoft's SDKs: what it needs from Microsoft 365 is described by the
protocols in :mod:`plugin.interfaces`, which :mod:`graph` implements.
"""
