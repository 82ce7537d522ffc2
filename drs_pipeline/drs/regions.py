"""Huawei Cloud's DRS region table: the default endpoint of each region.

Copied from the official Python SDK, ``huaweicloudsdkdrs`` 3.1.219,
``huaweicloudsdkdrs/v5/region/drs_region.py`` (``DrsRegion``; the Java and Go
SDKs list the same). The SDK's table is the same for v3 and v5: a region listed
here does not prove it serves the v5 API, so ``endpoint`` stays configurable.
"""

from __future__ import annotations

from types import MappingProxyType

DEFAULT_DOMAIN = "myhuaweicloud.com"

# Region -> the domain its endpoint ``https://drs.{region}.{domain}`` lives under,
# in the SDK's order. Almost every region is under the default domain.
REGION_DOMAINS = MappingProxyType(
    {
        "eu-west-101": "myhuaweicloud.eu",
        "cn-north-4": DEFAULT_DOMAIN,
        "cn-north-1": DEFAULT_DOMAIN,
        "cn-south-1": DEFAULT_DOMAIN,
        "cn-east-3": DEFAULT_DOMAIN,
        "cn-east-2": DEFAULT_DOMAIN,
        "cn-north-2": DEFAULT_DOMAIN,
        "ap-southeast-3": DEFAULT_DOMAIN,
        "ap-southeast-1": DEFAULT_DOMAIN,
        "ap-southeast-2": DEFAULT_DOMAIN,
        "sa-brazil-1": DEFAULT_DOMAIN,
        "la-south-2": DEFAULT_DOMAIN,
        "la-north-2": DEFAULT_DOMAIN,
        "na-mexico-1": DEFAULT_DOMAIN,
        "af-south-1": DEFAULT_DOMAIN,
        "cn-north-9": DEFAULT_DOMAIN,
        "cn-southwest-2": DEFAULT_DOMAIN,
        "cn-south-2": DEFAULT_DOMAIN,
        "cn-south-4": DEFAULT_DOMAIN,
        "tr-west-1": DEFAULT_DOMAIN,
        "ap-southeast-4": DEFAULT_DOMAIN,
        "eu-west-0": DEFAULT_DOMAIN,
        "ru-moscow-1": DEFAULT_DOMAIN,
        "ae-ad-1": DEFAULT_DOMAIN,
        "my-kualalumpur-1": DEFAULT_DOMAIN,
        "ru-northwest-2": DEFAULT_DOMAIN,
        "ap-southeast-5": DEFAULT_DOMAIN,
        "cn-east-5": DEFAULT_DOMAIN,
        "cn-north-12": DEFAULT_DOMAIN,
        "cn-east-4": DEFAULT_DOMAIN,
        "cn-southwest-3": DEFAULT_DOMAIN,
        "cn-north-11": DEFAULT_DOMAIN,
        "af-north-1": DEFAULT_DOMAIN,
        "me-east-1": DEFAULT_DOMAIN,
    }
)


def default_endpoint(region: str) -> str:
    """The region's DRS endpoint as the SDK lists it; an unlisted region's is under
    ``myhuaweicloud.com``, where the SDK puts every region but a few."""
    return f"https://drs.{region}.{REGION_DOMAINS.get(region, DEFAULT_DOMAIN)}"
