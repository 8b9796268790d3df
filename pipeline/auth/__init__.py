"""OAuth: the fleet's shared client-credentials token (app_token.py), users' tokens with a
single-flight refresh (user_token.py), and the authorisation-code flow with PKCE (flow.py)."""
