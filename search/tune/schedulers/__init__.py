"""Trial schedulers Ray does not have: ASHA with a noise margin, and ASHA on several objectives."""
