"""The trigger service: starts a search when an agent's own triggers say it should improve."""
