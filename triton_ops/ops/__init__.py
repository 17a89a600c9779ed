"""Op registrations, one module per family: name + scalar math / launchers + reference."""
