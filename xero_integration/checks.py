"""System checks with stable ids: ``xero_integration.E00n`` errors and ``W00n`` warnings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from xero_integration import app_settings
from xero_integration.adapters import DefaultXeroAdapter

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: Seconds a run needs beyond its last call: writing its outcomes and the log.
RUN_MARGIN_SECONDS = 15


@checks.register()
def check_adapter(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001: the adapter imports, subclasses DefaultXeroAdapter and implements every hook."""
    path = app_settings.ADAPTER
    try:
        adapter_class = import_string(path)
    except ImportError as exc:
        return [
            checks.Error(
                f"XERO_ADAPTER {path!r} cannot be imported: {exc}",
                hint="Set XERO_ADAPTER to the dotted path of your DefaultXeroAdapter subclass.",
                id="xero_integration.E001",
            )
        ]
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, DefaultXeroAdapter)):
        return [
            checks.Error(
                f"XERO_ADAPTER {path!r} is not a subclass of DefaultXeroAdapter.",
                hint="Subclass xero_integration.adapters.DefaultXeroAdapter.",
                id="xero_integration.E001",
            )
        ]
    missing = [
        hook
        for hook in DefaultXeroAdapter.required_hooks
        if getattr(adapter_class, hook) is getattr(DefaultXeroAdapter, hook)
    ]
    if missing:
        return [
            checks.Error(
                f"XERO_ADAPTER {path!r} does not implement: {', '.join(missing)}.",
                hint="The adapter reference in docs/integrating.md says what each hook returns.",
                id="xero_integration.E001",
            )
        ]
    return []


@checks.register()
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E002: tokens cannot be stored without a valid encryption key. With DEBUG on a missing
    key is W003 instead, so that management commands such as makemigrations still run; storing
    a token is refused either way (there is no fallback key)."""
    from cryptography.fernet import Fernet

    keys = app_settings.ENCRYPTION_KEYS
    if not keys:
        hint = (
            "Generate a key with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'` and set XERO_ENCRYPTION_KEYS."
        )
        if settings.DEBUG:
            return [
                checks.Warning(
                    "XERO_ENCRYPTION_KEYS is empty: connecting to Xero is refused until it is "
                    "set (tokens are never stored unencrypted).",
                    hint=hint,
                    id="xero_integration.W003",
                )
            ]
        return [
            checks.Error(
                "XERO_ENCRYPTION_KEYS is empty: Xero tokens cannot be encrypted at rest.",
                hint=hint,
                id="xero_integration.E002",
            )
        ]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return [
                checks.Error(
                    f"XERO_ENCRYPTION_KEYS key #{position} is not a valid Fernet key.",
                    hint="A key is 32 url-safe base64-encoded bytes (Fernet.generate_key()).",
                    id="xero_integration.E002",
                )
            ]
    return []


@checks.register()
def check_task_queue(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E003: django-q2 must not hand a running task to a second worker (retry > timeout)."""
    cluster = getattr(settings, "Q_CLUSTER", {}) or {}
    timeout, retry = cluster.get("timeout"), cluster.get("retry", 60)
    if timeout is not None and retry is not None and retry <= timeout:
        return [
            checks.Error(
                f"Q_CLUSTER['retry'] ({retry}) must be larger than "
                f"Q_CLUSTER['timeout'] ({timeout}).",
                hint="Otherwise a slow sync runs twice at once in two workers.",
                id="xero_integration.E003",
            )
        ]
    return []


@checks.register()
def check_run_fits_the_task_timeout(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E004: a sync run (XERO_RUN_SECONDS, then one more call of XERO_REQUEST_TIMEOUT) must
    end inside django-q2's task timeout, or the worker is killed mid-batch."""
    cluster = getattr(settings, "Q_CLUSTER", {}) or {}
    timeout = cluster.get("timeout")
    needed = app_settings.RUN_SECONDS + app_settings.REQUEST_TIMEOUT + RUN_MARGIN_SECONDS
    if timeout is not None and timeout < needed:
        return [
            checks.Error(
                f"Q_CLUSTER['timeout'] ({timeout} s) leaves no room for a sync run: it must be at "
                f"least XERO_RUN_SECONDS ({app_settings.RUN_SECONDS:g}) + XERO_REQUEST_TIMEOUT "
                f"({app_settings.REQUEST_TIMEOUT:g}) + {RUN_MARGIN_SECONDS} = {needed:g} s.",
                hint="Raise Q_CLUSTER['timeout'] (and 'retry' above it), or lower "
                "XERO_RUN_SECONDS.",
                id="xero_integration.E004",
            )
        ]
    return []


@checks.register()
def check_credentials(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001: without a client id nobody can connect; W002: sandbox URLs outside DEBUG."""
    messages: list[checks.CheckMessage] = []
    if not app_settings.CLIENT_ID:
        messages.append(
            checks.Warning(
                "XERO_CLIENT_ID is not set: the Connect button will not work.",
                hint="Create an app at developer.xero.com and set XERO_CLIENT_ID "
                "(and XERO_CLIENT_SECRET for a web app).",
                id="xero_integration.W001",
            )
        )
    if not settings.DEBUG:
        for name in ("LOGIN_URL", "IDENTITY_URL", "API_URL"):
            host = urlparse(getattr(app_settings, name)).hostname or ""
            if host in LOOPBACK_HOSTS:
                messages.append(
                    checks.Warning(
                        f"XERO_{name} points at {host}, probably the sandbox, while DEBUG is off.",
                        hint=f"Remove XERO_{name} to use Xero's real hosts in production.",
                        id="xero_integration.W002",
                    )
                )
    return messages


#: The blocks of the host's layout the Xero pages fill, and what goes wrong without each.
LAYOUT_BLOCKS = {
    "content": "the Xero pages would show nothing",
    "extra_head": "the “Connecting to Xero…” page would never refresh by itself",
}


@checks.register(checks.Tags.templates)
def check_host_layout(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W004: the layout ``xero_integration/base.html`` extends (the host's ``base.html``
    unless the host overrides it) renders the blocks the Xero pages fill."""
    rendered = _blocks_rendered("xero_integration/base.html")
    if rendered is None:
        return []
    if isinstance(rendered, str):
        return [
            checks.Warning(
                rendered,
                hint="Create a base.html with {% block content %} in its body and "
                "{% block extra_head %} in its <head>, or override xero_integration/base.html "
                "to extend your layout (docs/integrating.md, “Templates”).",
                id="xero_integration.W004",
            )
        ]
    return [
        checks.Warning(
            f"Your layout does not render the block “{block}” that the Xero pages fill: "
            f"{consequence}.",
            hint=f"Add {{% block {block} %}}{{% endblock %}} to your base.html"
            + (" inside <head>" if block == "extra_head" else "")
            + ", or override xero_integration/base.html to fill your layout's own blocks "
            "(docs/integrating.md, “Templates”).",
            id="xero_integration.W004",
        )
        for block, consequence in LAYOUT_BLOCKS.items()
        if block not in rendered
    ]


def _blocks_rendered(template_name: str) -> set[str] | str | None:
    """The names of the blocks a page extending ``template_name`` can fill; a message when its
    chain of ``{% extends %}`` cannot be followed; None when it cannot be read statically (not
    a Django template, or a parent named by a variable)."""
    from django.template import Context, TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template
    from django.template.loader_tags import BlockNode, ExtendsNode

    try:
        template = getattr(get_template(template_name), "template", None)
    except (TemplateDoesNotExist, TemplateSyntaxError) as exc:
        return f"The template {template_name} cannot be loaded: {exc}"
    if template is None:
        return None
    chain = [template]
    skip = [template.origin]
    while True:
        extends = next((n for n in chain[-1].nodelist if isinstance(n, ExtendsNode)), None)
        if extends is None:
            break
        parent_name = extends.parent_name.resolve(Context())
        if not isinstance(parent_name, str) or not parent_name:
            return None
        try:
            parent, origin = chain[-1].engine.find_template(parent_name, skip=skip)
        except TemplateDoesNotExist:
            return (
                f"{chain[-1].origin.template_name} extends “{parent_name}”, which does not "
                "exist: the Xero pages cannot be shown."
            )
        except TemplateSyntaxError as exc:
            return f"The template {parent_name} cannot be loaded: {exc}"
        chain.append(parent)
        skip.append(origin)
    # The outermost layout's blocks are rendered; an override further down adds the blocks it
    # nests in one of them.
    rendered = {block.name for block in chain[-1].nodelist.get_nodes_by_type(BlockNode)}
    for child in reversed(chain[:-1]):
        for block in child.nodelist.get_nodes_by_type(BlockNode):
            if block.name in rendered:
                rendered |= {nested.name for nested in block.nodelist.get_nodes_by_type(BlockNode)}
    return rendered
