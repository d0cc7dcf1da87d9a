"""Apply a FlavorSpec to a cloud through openstacksdk (credentials from clouds.yaml/OS_*)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scm.errors import ConfigError, NotFoundError, UnavailableError
from scm.openstack.flavor_spec import FlavorSpec


@contextmanager
def _cloud_errors() -> Iterator[None]:
    """openstacksdk's and keystoneauth's exceptions as one-line scm errors."""
    from keystoneauth1 import exceptions as auth_exceptions
    from openstack import exceptions

    try:
        yield
    except (exceptions.ConfigException, auth_exceptions.MissingRequiredOptions) as exc:
        raise ConfigError(
            f"no OpenStack credentials ({exc}): set OS_CLOUD and clouds.yaml, or OS_AUTH_URL etc."
        ) from None
    except exceptions.HttpException as exc:
        raise UnavailableError(f"the cloud refused the change: {exc.details or exc}") from None
    except (exceptions.SDKException, auth_exceptions.ClientException) as exc:
        raise UnavailableError(f"cannot reach the cloud: {exc}") from None


# For other read-only callers of the cloud (the console's fleet page).
cloud_errors = _cloud_errors


def connect(cloud: str | None = None) -> Any:
    """An openstacksdk connection from clouds.yaml or OS_* variables."""
    import openstack

    with _cloud_errors():
        return openstack.connect(cloud=cloud)


def apply_flavor_spec(conn: Any, spec: FlavorSpec, flavor: str, image: str | None) -> None:
    """Set the extra specs on ``flavor`` and the properties on ``image`` (when given)."""
    with _cloud_errors():
        found = conn.compute.find_flavor(flavor, ignore_missing=True)
        if found is None:
            raise NotFoundError(f"flavor {flavor!r} does not exist")
        conn.compute.create_flavor_extra_specs(found, spec.extra_specs)
    if image is not None and spec.image_properties:
        apply_image_properties(conn, spec.image_properties, image)


def apply_image_properties(conn: Any, properties: dict[str, str], image: str) -> None:
    """Set ``properties`` on the Glance image ``image`` (name or ID)."""
    with _cloud_errors():
        found_image = conn.image.find_image(image, ignore_missing=True)
        if found_image is None:
            raise NotFoundError(f"image {image!r} does not exist")
        conn.image.update_image(found_image, **properties)
