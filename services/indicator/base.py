"""Declarative base of the indicator service (its own metadata and migrations)."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.db import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
