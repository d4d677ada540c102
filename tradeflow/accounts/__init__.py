"""Who may use the API: API keys (``apikeys``)."""
