"""The Panel workbench: ``dashboard.py`` is the app ``ingmon serve`` runs; one module per page."""
