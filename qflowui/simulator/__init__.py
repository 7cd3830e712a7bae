"""A stand-in QFlow API server for development, demos and tests.

Serves /auth/oidc and /qflowapi/v1/... over HTTP with a deterministic demo tenant (see
dataset.py and catalog.py), variants from settings.QFLOW_SIMULATOR_OPTIONS (config.py) and
fault injection for tests (control.py). Nothing in the app imports this package: the dashboard
reaches it over HTTP, exactly as it reaches a real Qualys gateway.
"""
