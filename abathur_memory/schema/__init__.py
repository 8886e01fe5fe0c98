"""Schema: numbered SQL migrations, the legacy upgrade path and the doctor's checks."""
