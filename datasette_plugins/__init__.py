"""What city auditors will see in Datasette (issue 6; nothing here yet)."""
