"""The web console served at ``/ui`` (app.py), its templates and static files."""
