"""The control API under ``/_sandbox/`` (JSON) that tests and the demo use to set the sandbox
up, look inside it and inject trouble, plus the human pages."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from . import pages
from . import state as st
from .messages import Request, Response
from .oauth import DEPRECATED_SCOPES, SCOPE_WORDS
from .page_actions import PageActions
from .wire import ApiError, drop_none, query_bool, to_wire
from .xero_user import Refused, XeroUser

if TYPE_CHECKING:
    from .core import Sandbox

FAULT_KINDS = {"500", "503", "429", "timeout", "lost_response", "short_answer"}


def bad_request(message: str) -> ApiError:
    return ApiError(400, {"error": message})


class Control:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.xero_user = XeroUser(sandbox)
        self.page_actions = PageActions(sandbox, self.xero_user)

    def handle(self, request: Request) -> Response:
        path = request.path[len("/_sandbox") :].rstrip("/") or "/"
        method = request.method
        if method == "GET" and path == "/":
            return Response.html(pages.index(self.sandbox))
        match = re.fullmatch(r"/org/([^/]+)", path)
        if method == "GET" and match:
            organisation = self._organisation(match.group(1))
            query = request.query
            return Response.html(
                pages.organisation(
                    self.sandbox,
                    organisation,
                    watch=query_bool(query.get("watch")),
                    done=query.get("done", ""),
                    done_id=query.get("id", ""),
                )
            )
        match = re.fullmatch(r"/org/([^/]+)/(invoices|payments)/([^/]+)/([a-z]+)", path)
        if match:
            organisation = self._organisation(match.group(1))
            kind, object_id, action = match.group(2, 3, 4)
            return self.page_actions.handle(organisation, request, kind, object_id, action)
        routes = {
            ("POST", "/reset"): self.reset,
            ("GET", "/organisations"): self.list_organisations,
            ("POST", "/organisations"): self.create_organisation,
            ("POST", "/apps"): self.register_app,
            ("POST", "/tokens"): self.issue_tokens,
            ("GET", "/requests"): self.requests,
            ("POST", "/faults"): self.add_fault,
            ("DELETE", "/faults"): self.clear_faults,
            ("POST", "/clock"): self.clock,
            ("GET", "/clock"): self.clock,
            ("POST", "/disconnect"): self.disconnect,
            ("POST", "/limits"): self.limits,
            ("POST", "/webhooks"): self.register_webhook,
            ("GET", "/webhooks"): self.list_webhooks,
        }
        handler = routes.get((method, path))
        if handler:
            return handler(request)
        match = re.fullmatch(r"/organisations/([^/]+)", path)
        if match and method == "GET":
            return self.organisation_state(self._organisation(match.group(1)))
        match = re.fullmatch(r"/organisations/([^/]+)/contacts", path)
        if match and method == "POST":
            return self.edit_contacts(self._organisation(match.group(1)), request)
        match = re.fullmatch(r"/organisations/([^/]+)/contacts/([^/]+)/merge", path)
        if match and method == "POST":
            return self.merge_contact(self._organisation(match.group(1)), match.group(2), request)
        match = re.fullmatch(r"/organisations/([^/]+)/invoices", path)
        if match and method == "POST":
            return self.user_invoices(self._organisation(match.group(1)), request)
        match = re.fullmatch(r"/organisations/([^/]+)/payments", path)
        if match and method == "POST":
            return self.user_payments(self._organisation(match.group(1)), request)
        match = re.fullmatch(r"/organisations/([^/]+)/payments/([^/]+)", path)
        if match and method == "DELETE":
            return self.user_delete_payment(
                self._organisation(match.group(1)), match.group(2), request
            )
        raise ApiError(404, {"error": f"No control endpoint {method} /_sandbox{path}"})

    # ---- helpers -----------------------------------------------------------------------
    def _body(self, request: Request) -> dict:
        if not request.body.strip():
            return {}
        try:
            body = json.loads(request.body)
        except ValueError:
            raise bad_request("The body must be JSON.") from None
        if not isinstance(body, dict):
            raise bad_request("The body must be a JSON object.")
        return body

    def _organisation(self, key: str) -> st.Organisation:
        for organisation in self.sandbox.organisations.values():
            if key in (organisation.tenant_id, organisation.short_code):
                return organisation
        raise ApiError(404, {"error": f"No organisation {key}"})

    @staticmethod
    def _int(body: dict, name: str, minimum: int = 0) -> int | None:
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise bad_request(f"'{name}' must be a whole number of at least {minimum}.")
        return value

    # ---- endpoints ---------------------------------------------------------------------
    def reset(self, request: Request) -> Response:
        self.sandbox.reset()
        return Response.json({"status": "reset"})

    def list_organisations(self, request: Request) -> Response:
        return Response.json(
            [
                {"tenant_id": o.tenant_id, "short_code": o.short_code, "name": o.name}
                for o in self.sandbox.organisations.values()
            ]
        )

    def create_organisation(self, request: Request) -> Response:
        body = self._body(request)
        name = body.get("name")
        country = body.get("country_code")
        currency = body.get("base_currency")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("'name' is required.")
        if not isinstance(country, str) or not re.fullmatch(r"[A-Za-z]{2}", country):
            raise bad_request("'country_code' must be a two-letter country code.")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise bad_request("'base_currency' must be a three-letter ISO 4217 code.")
        multicurrency = body.get("multicurrency", False)
        if not isinstance(multicurrency, bool):
            raise bad_request("'multicurrency' must be true or false.")
        lock = body.get("period_lock_date")
        try:
            lock_date = date.fromisoformat(lock) if lock else None
        except (TypeError, ValueError):
            raise bad_request("'period_lock_date' must be YYYY-MM-DD.") from None
        organisation = st.Organisation(
            name=name.strip(),
            country_code=country,
            base_currency=currency,
            multicurrency=multicurrency,
            now=self.sandbox.clock.now(),
            daily_limit=self._int(body, "daily_limit", 1),
            period_lock_date=lock_date,
            contacts=self._int(body, "contacts") or 0,
        )
        with self.sandbox.lock:
            self.sandbox.organisations[organisation.tenant_id] = organisation
        self.sandbox.save()
        return Response.json(
            {"tenant_id": organisation.tenant_id, "short_code": organisation.short_code}, 201
        )

    def organisation_state(self, organisation: st.Organisation) -> Response:
        with organisation.lock:
            state = {
                "organisation": organisation.organisation_record(),
                "contacts": list(organisation.contacts.values()),
                "invoices": list(organisation.invoices.values()),
                "payments": list(organisation.payments.values()),
                "tax_rates": organisation.tax_rates,
                "currencies": organisation.currencies,
                "accounts": organisation.accounts,
            }
            return Response.json(drop_none(to_wire(state)))

    def register_app(self, request: Request) -> Response:
        body = self._body(request)
        client_id = body.get("client_id")
        uris = body.get("redirect_uris")
        secret = body.get("client_secret") or None
        if not isinstance(client_id, str) or not client_id.strip():
            raise bad_request("'client_id' is required.")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            raise bad_request("'redirect_uris' must be a non-empty list of URLs.")
        if len(uris) > 50:
            raise bad_request("An app can have at most 50 redirect URIs.")
        if secret is not None and not isinstance(secret, str):
            raise bad_request("'client_secret' must be a string.")
        app = st.App(
            client_id=client_id,
            client_secret=secret,
            redirect_uris=list(uris),
            name=str(body.get("name") or client_id),
            legacy_scopes=bool(body.get("legacy_scopes", False)),
        )
        with self.sandbox.lock:
            self.sandbox.apps[client_id] = app
        self.sandbox.save()
        return Response.json(
            {"client_id": client_id, "type": "pkce" if app.is_pkce else "web", "name": app.name},
            201,
        )

    def issue_tokens(self, request: Request) -> Response:
        body = self._body(request)
        app = self.sandbox.apps.get(body.get("client_id") or "")
        if app is None:
            raise bad_request("Unknown 'client_id': register the app first.")
        tenant_ids = body.get("tenant_ids")
        if not isinstance(tenant_ids, list) or not all(
            t in self.sandbox.organisations for t in tenant_ids
        ):
            raise bad_request("'tenant_ids' must list existing organisations.")
        scope = str(body.get("scope") or "").split()
        for name in scope:
            if name not in SCOPE_WORDS or (name in DEPRECATED_SCOPES and not app.legacy_scopes):
                return Response.json({"error": "invalid_scope"}, 400)
        family = st.TokenFamily(
            id=str(uuid.uuid4()),
            client_id=app.client_id,
            scope=scope,
            auth_event_id=str(uuid.uuid4()),
        )
        with self.sandbox.lock:
            self.sandbox.token_families[family.id] = family
            for tenant_id in tenant_ids:
                self.sandbox.connect(app.client_id, tenant_id, family.auth_event_id)
            tokens = self.sandbox.oauth.issue(family)
        self.sandbox.save()
        tokens["connections"] = [
            self.sandbox.oauth.connection_json(c)
            for c in self.sandbox.connections.values()
            if c.client_id == app.client_id and c.tenant_id in tenant_ids
        ]
        return Response.json(tokens)

    def requests(self, request: Request) -> Response:
        return Response.json(self.sandbox.requests_for(request.query.get("tenant_id")))

    def add_fault(self, request: Request) -> Response:
        body = self._body(request)
        kind = str(body.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise bad_request(f"'kind' must be one of {sorted(FAULT_KINDS)}.")
        path = body.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad_request("'path' must be a path (an fnmatch pattern) starting with '/'.")
        probability = body.get("probability")
        if probability is not None and (
            not isinstance(probability, int | float) or not 0 <= probability <= 1
        ):
            raise bad_request("'probability' must be between 0 and 1.")
        fault = st.Fault(
            method=str(body.get("method") or "*").upper(),
            path=path,
            kind=kind,
            remaining=self._int(body, "count", 1),
            probability=probability,
            hold_seconds=float(body.get("hold_seconds", 30)) if kind == "timeout" else 0.0,
            retry_after=self._int(body, "retry_after", 0) or 1,
        )
        self.sandbox.add_fault(fault)
        return Response.json({"status": "added", "faults": len(self.sandbox.faults)}, 201)

    def clear_faults(self, request: Request) -> Response:
        with self.sandbox.lock:
            self.sandbox.faults.clear()
        return Response.json({"status": "cleared"})

    def clock(self, request: Request) -> Response:
        if request.method == "POST":
            body = self._body(request)
            seconds = body.get("advance_seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise bad_request("'advance_seconds' must be a number of seconds, at least 0.")
            self.sandbox.clock.advance(seconds)
        return Response.json({"now": self.sandbox.clock.now().isoformat()})

    def disconnect(self, request: Request) -> Response:
        body = self._body(request)
        tenant_id = body.get("tenant_id")
        if tenant_id not in self.sandbox.organisations:
            raise bad_request("'tenant_id' must be an existing organisation.")
        removed = self.sandbox.disconnect_tenant(tenant_id)
        self.sandbox.save()
        return Response.json({"status": "disconnected", "connections_removed": removed})

    def limits(self, request: Request) -> Response:
        body = self._body(request)
        organisation = self.sandbox.organisations.get(body.get("tenant_id") or "")
        if organisation is None:
            raise bad_request("'tenant_id' must be an existing organisation.")
        for key, attribute in (
            ("per_minute", "per_minute"),
            ("per_day", "per_day"),
            ("concurrent", "concurrent"),
        ):
            value = self._int(body, key, 1)
            if value is not None:
                setattr(organisation, attribute, value)
        return Response.json(
            {
                "tenant_id": organisation.tenant_id,
                "per_minute": organisation.per_minute,
                "per_day": organisation.per_day,
                "concurrent": organisation.concurrent,
            }
        )

    def register_webhook(self, request: Request) -> Response:
        body = self._body(request)
        url, key = body.get("url"), body.get("key")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad_request("'url' must be an http(s) URL.")
        if not isinstance(key, str) or not key:
            raise bad_request("'key' (the webhook signing key) is required.")
        result = self.sandbox.webhooks.register(url, key)
        return Response.json(result, 201 if result["status"] == "OK" else 400)

    def list_webhooks(self, request: Request) -> Response:
        return Response.json(self.sandbox.webhooks.describe())

    def edit_contacts(self, organisation: st.Organisation, request: Request) -> Response:
        """Change contacts as a Xero user would in Xero (no API limits): create, edit, archive."""
        body = self._body(request)
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not all(isinstance(c, dict) for c in contacts):
            raise bad_request("'contacts' must be a list of Xero contact objects.")
        now = self.sandbox.clock.now()
        changed = []
        with organisation.lock:
            for given in contacts:
                contact = organisation.contacts.get(str(given.get("ContactID", "")))
                created = contact is None
                if created:
                    contact = {
                        "ContactID": str(uuid.uuid4()),
                        "ContactStatus": "ACTIVE",
                        "EmailAddress": "",
                        "Addresses": [],
                        "Phones": [],
                        "ContactPersons": [],
                        "IsSupplier": False,
                        "IsCustomer": False,
                        "HasAttachments": False,
                        "HasValidationErrors": False,
                        "ContactGroups": [],
                    }
                    organisation.contacts[contact["ContactID"]] = contact
                contact.update({k: v for k, v in given.items() if k != "ContactID"})
                contact["UpdatedDateUTC"] = now
                changed.append(contact["ContactID"])
                self.sandbox.webhooks.emit(
                    organisation, "CONTACT", contact["ContactID"], "CREATE" if created else "UPDATE"
                )
        self.sandbox.save()
        return Response.json({"contact_ids": changed})

    def merge_contact(
        self, organisation: st.Organisation, contact_id: str, request: Request
    ) -> Response:
        """Merge one contact into another, as Xero's "Merge" does: the merged one is archived
        and points at the survivor through MergedToContactID."""
        body = self._body(request)
        with organisation.lock:
            source = organisation.contacts.get(contact_id)
            target = organisation.contacts.get(str(body.get("into", "")))
            if source is None or target is None or source is target:
                raise bad_request("Merge needs an existing contact and a different 'into' contact.")
            now = self.sandbox.clock.now()
            source.update(
                ContactStatus="ARCHIVED", MergedToContactID=target["ContactID"], UpdatedDateUTC=now
            )
            for invoice in organisation.invoices.values():
                if invoice["Contact"].get("ContactID") == contact_id:
                    invoice["Contact"] = {
                        **invoice["Contact"],
                        "ContactID": target["ContactID"],
                        "Name": target["Name"],
                    }
            target["UpdatedDateUTC"] = now
        self.sandbox.webhooks.emit(organisation, "CONTACT", contact_id, "UPDATE")
        self.sandbox.save()
        return Response.json({"merged": contact_id, "into": target["ContactID"]})

    def _objects(self, request: Request, key: str, kind: str) -> list[dict]:
        objects = self._body(request).get(key)
        if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
            raise bad_request(f"'{key}' must be a list of Xero {kind} objects.")
        return objects

    def _as_person(self, key: str, change: Callable[[], list[dict]]) -> Response:
        """Run a person's change; Xero's refusal comes back as Xero words it (400), with the
        changes saved before it under ``key``."""
        try:
            return Response.json(drop_none(to_wire({key: change()})))
        except Refused as refused:
            body = refused.error.body if isinstance(refused.error.body, dict) else {}
            answer = {**body, key: refused.applied}
            return Response.json(drop_none(to_wire(answer)), refused.error.status)
        finally:
            self.sandbox.save()

    def user_invoices(self, organisation: st.Organisation, request: Request) -> Response:
        """A person creates invoices in Xero, or edits, approves, voids or deletes them."""
        invoices = self._objects(request, "invoices", "invoice")
        return self._as_person(
            "invoices", lambda: self.xero_user.save_invoices(organisation, request, invoices)
        )

    def user_payments(self, organisation: st.Organisation, request: Request) -> Response:
        """A person records payments in Xero (e.g. from the bank feed) or (un)reconciles them."""
        payments = self._objects(request, "payments", "payment")
        return self._as_person(
            "payments", lambda: self.xero_user.save_payments(organisation, request, payments)
        )

    def user_delete_payment(
        self, organisation: st.Organisation, payment_id: str, request: Request
    ) -> Response:
        """A person removes a payment in Xero."""
        return self._as_person(
            "payments",
            lambda: [self.xero_user.remove_payment(organisation, request, payment_id)],
        )

    @staticmethod
    def describe_value(value: Any) -> Any:
        return to_wire(value)
