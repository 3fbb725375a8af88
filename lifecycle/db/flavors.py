"""Flavors: the sizes an instance is built with, as Nova's."""

import sqlalchemy as sa
from oslo_db import exception as db_exc

from lifecycle import exception
from lifecycle.db import models


class FlavorsMixin:
    """Part of :class:`lifecycle.db.api.Database`."""

    def flavor_create(self, values: dict) -> models.Flavor:
        flavor = models.Flavor(**values)
        try:
            with self.session() as session:
                session.add(flavor)
        except db_exc.DBDuplicateEntry as e:
            key = 'name' if 'name' in (e.columns or ['name']) else 'id'
            raise exception.FlavorExists(
                key=key,
                value=values['name' if key == 'name' else 'flavorid']) from e
        return flavor

    def flavor_get(self, flavorid: str) -> models.Flavor:
        with self.session() as session:
            flavor = session.scalars(sa.select(models.Flavor).where(
                models.Flavor.flavorid == flavorid)).first()
        if flavor is None:
            raise exception.FlavorNotFound(flavor_id=flavorid)
        return flavor

    def flavor_get_all(self) -> list[models.Flavor]:
        with self.session() as session:
            return list(session.scalars(sa.select(models.Flavor).order_by(
                models.Flavor.memory_mb, models.Flavor.flavorid)))
