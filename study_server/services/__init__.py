"""Plain functions holding the study rules; route handlers parse requests and call these."""
