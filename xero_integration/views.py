"""Settings → Integrations → Xero: connect, choose the organisation and accounts, disconnect.

Every view answers at once: work that needs Xero is queued as a task, and the pages show its
progress. Only users the adapter allows may change the connection of their own CRM account.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from xero_integration import (
    alerts,
    app_settings,
    connect,
    contacts,
    health,
    history,
    oauth_state,
    services,
    taskqueue,
)
from xero_integration.adapters import find_invoice, get_adapter, host_key
from xero_integration.forms import AlertsForm, DefaultAccountsForm
from xero_integration.messages import user_activity
from xero_integration.models import (
    AccountAlerts,
    ConnectAttempt,
    ConnectionStatus,
    HistoryBackfill,
    XeroConnection,
)
from xero_integration.xero.oauth import new_code_verifier, new_state


def _account_key(request: HttpRequest) -> str:
    account_key = get_adapter(request).account_key_for_request(request)
    if not account_key:
        raise Http404("No CRM account for this user.")
    return account_key


def _require_manager(request: HttpRequest, account_key: str) -> None:
    if not get_adapter(request).can_manage_connection(request, account_key):
        raise PermissionDenied("Only the account's owners and admins manage its Xero connection.")


def _error(request: HttpRequest, title: str, message: str, status: int = 400) -> HttpResponse:
    return render(
        request,
        "xero_integration/connect_error.html",
        {"title": title, "message": message},
        status=status,
    )


def _redirect_uri(request: HttpRequest) -> str:
    return app_settings.REDIRECT_URI or request.build_absolute_uri(
        reverse("xero_integration:callback")
    )


@login_required
@require_GET
def settings_page(request: HttpRequest) -> HttpResponse:
    """The Xero page: status and health, the guided set-up (default accounts, then the
    invoices created before connecting), problems in plain words, alerts, recent activity."""
    account_key = _account_key(request)
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    can_manage = get_adapter(request).can_manage_connection(request, account_key)
    return render(
        request,
        "xero_integration/settings.html",
        _settings_context(request, account_key, connection, None, can_manage),
    )


def _settings_context(
    request: HttpRequest,
    account_key: str,
    connection: XeroConnection | None,
    form: DefaultAccountsForm | None,
    can_manage: bool,
    alerts_form: AlertsForm | None = None,
) -> dict:
    if form is None and connection and connection.is_connected and connection.accounts_loaded_at:
        form = DefaultAccountsForm(connection=connection)
    if alerts_form is None:
        alerts_form = AlertsForm(
            instance=AccountAlerts.objects.filter(account_key=account_key).first()
        )
    sync_health = health.account_health(account_key, connection)
    for listed in (*sync_health.failures, *sync_health.waits):
        listed.url = health.host_invoice_url(listed.job)
    return {
        "connection": connection,
        "form": form,
        "alerts_form": alerts_form,
        "can_manage": can_manage,
        "health": sync_health,
        "activity": user_activity(account_key),
        "history": _history_context(connection),
        "contact_import": connection.contact_imports.first() if connection else None,
        "integrations_url": get_adapter(request).integrations_url(request),
        "failed_syncs_url": _failed_syncs_url(request),
        "waiting_invoices": sync_health.sending + sync_health.waiting,
    }


def _failed_syncs_url(request: HttpRequest) -> str:
    """Admin's "Failed syncs", for staff who may see it."""
    if not request.user.has_perm("xero_integration.view_syncjob"):
        return ""
    try:
        return reverse("admin:xero_integration_failedsyncjob_changelist")
    except NoReverseMatch:  # a host without Django admin
        return ""


def _history_context(connection: XeroConnection | None) -> dict:
    """The "invoices created before connecting" step: counted, ready, sending, or done."""
    if connection is None or not connection.is_connected:
        return {}
    found = history.ensure_counted(connection)
    if found is None:
        return {}
    if found.state == HistoryBackfill.State.SENDING:
        history.finish_if_done(found)
    history.nudge(found)
    reached = history.progress(found) if found.queued else None
    return {
        "backfill": found,
        "progress": reached,
        "estimate": history.estimate(found),
    }


@login_required
@require_GET
def settings_part(request: HttpRequest, part: str) -> HttpResponse:
    """One section of the settings page, for the page to poll while a task works on it."""
    templates = {
        "accounts": "xero_integration/_accounts.html",
        "history": "xero_integration/_history.html",
    }
    if part not in templates:
        raise Http404("No such part of the Xero settings page.")
    account_key = _account_key(request)
    connection = XeroConnection.objects.filter(account_key=account_key).first()
    can_manage = get_adapter(request).can_manage_connection(request, account_key)
    form = None
    if connection and connection.is_connected and connection.accounts_loaded_at:
        form = DefaultAccountsForm(connection=connection)
    context = {
        "connection": connection,
        "form": form,
        "can_manage": can_manage,
        "history": _history_context(connection),
        "health": health.account_health(account_key, connection, listed=0),
    }
    return render(request, templates[part], context)


@login_required
@require_POST
def start_connect(request: HttpRequest) -> HttpResponse:
    """Send the user to Xero's consent screen with a fresh state and PKCE verifier."""
    account_key = _account_key(request)
    _require_manager(request, account_key)
    if not app_settings.CLIENT_ID:
        return _error(
            request,
            "Xero is not configured",
            "This CRM has no Xero app configured (XERO_CLIENT_ID). Ask your administrator.",
            status=503,
        )
    if not app_settings.ENCRYPTION_KEYS:
        return _error(
            request,
            "Xero is not configured",
            "This CRM has no key to encrypt Xero's tokens with (XERO_ENCRYPTION_KEYS), so it "
            "cannot connect. Ask your administrator.",
            status=503,
        )
    state, verifier = new_state(), new_code_verifier()
    oauth_state.stash(request, state, code_verifier=verifier, account_key=account_key)
    url = services.oauth_client(_redirect_uri(request)).authorization_url(state, verifier)
    return HttpResponseRedirect(url)


@login_required
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Xero sends the user back here; record the code and let a task exchange it."""
    stashed = oauth_state.pop(request, request.GET.get("state"))
    if stashed is None:
        return _error(
            request,
            "This Xero connection request is not valid",
            "The link back from Xero does not match a connection started from this browser, "
            "or it has expired. Nothing was changed. Start again from Settings → Integrations → "
            "Xero.",
        )
    account_key = stashed["account_key"]
    if account_key != _account_key(request):
        raise PermissionDenied("This connection request belongs to another CRM account.")
    _require_manager(request, account_key)
    error = request.GET.get("error")
    if error:
        if error == "access_denied":
            messages.info(request, "You cancelled on Xero's screen; nothing was changed.")
            return redirect("xero_integration:settings")
        return _error(
            request,
            "Xero did not connect",
            f"Xero answered “{error}”: {request.GET.get('error_description', '')}".strip(),
        )
    code = request.GET.get("code")
    if not code:
        return _error(request, "Xero did not connect", "Xero sent no authorisation code.")
    with transaction.atomic():
        attempt = ConnectAttempt.objects.create(
            account_key=account_key,
            user=request.user,
            code=code,
            code_verifier=stashed["code_verifier"],
            redirect_uri=_redirect_uri(request),
        )
        taskqueue.dispatch(connect.exchange_code, str(attempt.pk))
    return redirect("xero_integration:attempt", attempt_id=attempt.pk)


def _own_attempt(request: HttpRequest, attempt_id: str) -> ConnectAttempt:
    account_key = _account_key(request)
    return get_object_or_404(ConnectAttempt, pk=attempt_id, account_key=account_key)


@login_required
@require_GET
def attempt_page(request: HttpRequest, attempt_id: str) -> HttpResponse:
    """Progress of a connection: waiting, choose an organisation, failed, or done."""
    attempt = _own_attempt(request, attempt_id)
    if attempt.state == ConnectAttempt.State.DONE:
        connection = XeroConnection.objects.get(account_key=attempt.account_key)
        messages.success(request, f"Connected to {connection.tenant_name}.")
        return redirect("xero_integration:settings")
    if attempt.state == ConnectAttempt.State.FAILED:
        return _error(request, "Xero did not connect", attempt.error, status=200)
    taken = connect.tenants_taken(attempt.account_key)
    tenants = [{**tenant, "taken": tenant["tenant_id"] in taken} for tenant in attempt.tenants]
    # The first organisation that can be chosen is selected.
    for tenant in tenants:
        if not tenant["taken"]:
            tenant["checked"] = True
            break
    return render(
        request, "xero_integration/attempt.html", {"attempt": attempt, "tenants": tenants}
    )


@login_required
@require_POST
def choose_organisation(request: HttpRequest, attempt_id: str) -> HttpResponse:
    """Keep the organisation picked among those ticked on Xero's screen."""
    attempt = _own_attempt(request, attempt_id)
    _require_manager(request, attempt.account_key)
    tenant_id = request.POST.get("tenant_id", "")
    if attempt.state != ConnectAttempt.State.CHOOSING:
        return redirect("xero_integration:attempt", attempt_id=attempt.pk)
    chosen = next((t for t in attempt.tenants if t["tenant_id"] == tenant_id), None)
    if chosen is None:
        messages.error(request, "Choose one of the organisations listed.")
        return redirect("xero_integration:attempt", attempt_id=attempt.pk)
    if tenant_id in connect.tenants_taken(attempt.account_key):
        messages.error(request, connect.organisation_taken_message(chosen["tenant_name"]))
        return redirect("xero_integration:attempt", attempt_id=attempt.pk)
    with transaction.atomic():
        # Only while still choosing: the attempt may have expired since the page was shown.
        if ConnectAttempt.objects.filter(pk=attempt.pk, state=ConnectAttempt.State.CHOOSING).update(
            chosen_tenant_id=tenant_id,
            state=ConnectAttempt.State.FINISHING,
            updated_at=timezone.now(),
        ):
            taskqueue.dispatch(connect.finish, str(attempt.pk))
    return redirect("xero_integration:attempt", attempt_id=attempt.pk)


def _own_connection(request: HttpRequest) -> XeroConnection:
    account_key = _account_key(request)
    _require_manager(request, account_key)
    return get_object_or_404(XeroConnection, account_key=account_key)


@login_required
@require_POST
def save_accounts(request: HttpRequest) -> HttpResponse:
    """Save the default payment and revenue accounts."""
    connection = _own_connection(request)
    form = DefaultAccountsForm(request.POST, connection=connection)
    if form.is_valid():
        form.save()
        messages.success(request, _("Default accounts saved."))
        return redirect("xero_integration:settings")
    return render(
        request,
        "xero_integration/settings.html",
        _settings_context(request, connection.account_key, connection, form, True),
        status=400,
    )


@login_required
@require_POST
def reload_accounts(request: HttpRequest) -> HttpResponse:
    """Read the organisation's accounts from Xero again (after enabling payments on one)."""
    connection = _own_connection(request)
    if not connection.is_connected:
        messages.error(request, "Connect to Xero first.")
        return redirect("xero_integration:settings")
    with transaction.atomic():
        connection.accounts_loaded_at = None
        connection.save(update_fields=["accounts_loaded_at", "updated_at"])
        taskqueue.dispatch(connect.load_reference_data, connection.pk)
    messages.info(request, "Reading your chart of accounts from Xero…")
    return redirect("xero_integration:settings")


@login_required
@require_http_methods(["GET", "POST"])
def disconnect(request: HttpRequest) -> HttpResponse:
    """Disconnect now in the CRM; Xero is told by a task, and the history stays. A GET shows
    what it does and asks to confirm (the settings page asks in a dialog)."""
    connection = _own_connection(request)
    if connection.status == ConnectionStatus.DISCONNECTED:
        return redirect("xero_integration:settings")
    if request.method == "GET":
        return render(request, "xero_integration/disconnect.html", {"connection": connection})
    with transaction.atomic():
        connect.disconnect(connection, request.user)
        taskqueue.dispatch(connect.disconnect_in_xero, connection.pk, connection.token_generation)
    messages.success(request, f"Disconnected from {connection.tenant_name}.")
    return redirect("xero_integration:settings")


@login_required
@require_POST
def send_history(request: HttpRequest) -> HttpResponse:
    """ "Send the invoices created before connecting": a task sends them in batches."""
    connection = _own_connection(request)
    found = history.current(connection)
    if not connection.is_connected or found is None:
        messages.error(request, _("Connect to Xero and choose the default accounts first."))
    elif not history.start(found, request.user):
        messages.info(request, _("Those invoices are already on their way, or there are none."))
    return redirect(reverse("xero_integration:settings") + "#history")


@login_required
@require_POST
def recount_history(request: HttpRequest) -> HttpResponse:
    """Count again the invoices the organisation lacks (new ones since, or after a sending)."""
    connection = _own_connection(request)
    found = history.current(connection)
    if found is not None and connection.is_connected:
        history.recount(found)
    return redirect(reverse("xero_integration:settings") + "#history")


@login_required
@require_POST
def save_alerts(request: HttpRequest) -> HttpResponse:
    """The daily digest of failed syncs, on or off."""
    connection = _own_connection(request)
    form = AlertsForm(request.POST)
    if form.is_valid():
        alerts.set_daily_digest(connection.account_key, form.cleaned_data["daily_digest"])
        messages.success(request, _("Email alerts saved."))
        return redirect(reverse("xero_integration:settings") + "#alerts")
    return render(
        request,
        "xero_integration/settings.html",
        _settings_context(
            request, connection.account_key, connection, None, True, alerts_form=form
        ),
        status=400,
    )


@login_required
@require_POST
def import_contacts(request: HttpRequest) -> HttpResponse:
    """Read contact changes from Xero now, instead of waiting for the schedule."""
    connection = _own_connection(request)
    if not connection.is_connected:
        messages.error(request, "Connect to Xero first.")
        return redirect("xero_integration:settings")
    job = contacts.start_import(connection)
    messages.info(request, f"Importing contacts from Xero ({job.get_kind_display().lower()})…")
    return redirect("xero_integration:settings")


@login_required
@require_POST
def sync_invoice(request: HttpRequest, host_model: str, host_id: str) -> HttpResponse:
    """ "Sync now" on the host's invoice page: push the invoice again (a task does it)."""
    from xero_integration import outbox

    adapter = get_adapter(request)
    account_key = _account_key(request)
    invoice = find_invoice(adapter, host_model, host_id)
    if invoice is None or adapter.get_account_key(invoice) != account_key:
        raise Http404("No such invoice.")
    with transaction.atomic():
        outbox.sync_now(account_key, *host_key(invoice), adapter.invoice_number(invoice))
    messages.info(request, "Sending the invoice to Xero…")
    back = request.POST.get("next") or request.META.get("HTTP_REFERER") or "/"
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    return redirect(back)


# Xero signs its calls instead of signing in: no CSRF token, and no sign-in even on hosts that
# use LoginRequiredMiddleware.
@csrf_exempt
@login_not_required
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """Xero's webhook: 401 for a bad signature, 200 with no body and no cookies otherwise
    (Intent to Receive included, and a signed payload we cannot use); the work happens in a
    task."""
    from xero_integration import webhooks

    if not webhooks.signature_is_valid(
        app_settings.WEBHOOK_KEY, request.body, request.headers.get("x-xero-signature", "")
    ):
        return HttpResponse(status=401)
    webhooks.record(request.body)
    return HttpResponse(status=200)
