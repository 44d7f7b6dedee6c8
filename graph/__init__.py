"""Microsoft 365: sign-in (msal), Microsoft Graph (msgraph-sdk), the Exchange admin API (httpx), the
permissions service and the tenant audit. Implements the protocols of :mod:`plugin.interfaces`.

Only this package imports msal, msgraph, kiota and azure.identity; msgraph imports are slow (about a
second), so they stay inside the functions that need them.
"""
