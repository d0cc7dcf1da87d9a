"""Apply a FlavorSpec to a cloud through openstacksdk (credentials from clouds.yaml/OS_*)."""

from __future__ import annotations

from typing import Any

from scm.errors import ConfigError, NotFoundError, UnavailableError
from scm.openstack.flavor_spec import FlavorSpec


def connect(cloud: str | None = None) -> Any:
    """An openstacksdk connection; ConfigError when no credentials are configured."""
    import openstack
    from openstack import exceptions

    try:
        return openstack.connect(cloud=cloud)
    except exceptions.ConfigException as exc:
        raise ConfigError(f"no OpenStack credentials: {exc}") from None


def apply_flavor_spec(conn: Any, spec: FlavorSpec, flavor: str, image: str | None) -> None:
    """Set the extra specs on ``flavor`` and the properties on ``image`` (when given)."""
    from openstack import exceptions

    try:
        found = conn.compute.find_flavor(flavor, ignore_missing=True)
        if found is None:
            raise NotFoundError(f"flavor {flavor!r} does not exist")
        conn.compute.create_flavor_extra_specs(found, spec.extra_specs)
        if image is not None and spec.image_properties:
            found_image = conn.image.find_image(image, ignore_missing=True)
            if found_image is None:
                raise NotFoundError(f"image {image!r} does not exist")
            conn.image.update_image(found_image, **spec.image_properties)
    except exceptions.HttpException as exc:
        raise UnavailableError(f"the cloud refused the change: {exc.details or exc}") from None
    except exceptions.SDKException as exc:
        raise UnavailableError(f"cannot reach the cloud: {exc}") from None
