"""Common code of the checkup services: settings, storage, errors, identity, regions."""
