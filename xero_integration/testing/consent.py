"""Drive the sandbox's consent page the way a browser would, without a browser.

``consent(authorize_url, allow=True, organisations=["Demo Company (NZ)"])`` fetches the page with
``requests``, reads its form with ``html.parser``, ticks the named organisations, presses
"Allow access" (or "Cancel") and returns the redirect's ``Location`` without following it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

TIMEOUT = 10


@dataclass
class Field:
    """One form control."""

    tag: str
    type: str
    name: str
    value: str
    checked: bool = False
    id: str = ""
    label: str = ""
    #: Text seen after the control until the next control (a label-less checkbox's caption).
    trailing: str = ""


@dataclass
class Form:
    """A form on the page: where it posts and its controls."""

    action: str
    method: str
    fields: list[Field] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._labels: list[tuple[str, list[str], list[Field]]] = []  # (for, text, controls)
        self.label_for: dict[str, str] = {}
        self._button: tuple[Field, list[str]] | None = None
        self._last: Field | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "label":
            self._labels.append((a.get("for", ""), [], []))
        elif tag in ("input", "button", "select", "textarea") and self._form is not None:
            default_type = "submit" if tag == "button" else "text"
            control = Field(
                tag=tag,
                type=a.get("type", default_type).lower(),
                name=a.get("name", ""),
                value=a.get("value", "on" if a.get("type") in ("checkbox", "radio") else ""),
                checked="checked" in a,
                id=a.get("id", ""),
            )
            self._form.fields.append(control)
            self._last = control
            for _, _, controls in self._labels:
                controls.append(control)
            if tag == "button":
                self._button = (control, [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "label" and self._labels:
            target, text, controls = self._labels.pop()
            caption = " ".join("".join(text).split())
            if target:
                self.label_for[target] = caption
            for control in controls:
                control.label = control.label or caption
        elif tag == "button" and self._button is not None:
            control, text = self._button
            control.label = " ".join("".join(text).split())
            self._button = None

    def handle_data(self, data: str) -> None:
        for _, text, _ in self._labels:
            text.append(data)
        if self._button is not None:
            self._button[1].append(data)
        if self._last is not None:
            self._last.trailing += data


def parse_forms(html: str) -> list[Form]:
    """Every form of an HTML page, with label captions attached to their controls."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    for form in parser.forms:
        for control in form.fields:
            if control.id and control.id in parser.label_for:
                control.label = parser.label_for[control.id]
            if not control.label:
                control.label = " ".join(control.trailing.split())
    return parser.forms


def _consent_form(forms: list[Form]) -> Form:
    for form in forms:
        if any(f.name == "decision" for f in form.fields):
            return form
    raise AssertionError(f"No consent form (with a 'decision' control) on the page: {forms!r}")


def _names_match(wanted: str, control: Field) -> bool:
    return wanted == control.value or wanted in control.label


@dataclass
class ConsentPage:
    """The consent page as fetched: its URL, status, HTML and consent form."""

    url: str
    status: int
    html: str
    form: Form | None

    @property
    def organisations(self) -> dict[str, str]:
        """Caption → tenant id of every organisation offered."""
        if self.form is None:
            return {}
        return {f.label: f.value for f in self.form.fields if f.name == "tenant_id"}


def fetch(authorize_url: str, session: requests.Session | None = None) -> ConsentPage:
    """GET the consent page; ``form`` is None when the sandbox answered with no consent form."""
    session = session or requests.Session()
    response = session.get(authorize_url, timeout=TIMEOUT, allow_redirects=False)
    form = None
    if response.status_code == 200:
        forms = parse_forms(response.text)
        try:
            form = _consent_form(forms)
        except AssertionError:
            form = None
    return ConsentPage(response.url, response.status_code, response.text, form)


def consent(
    authorize_url: str,
    *,
    allow: bool = True,
    organisations: list[str] | None = None,
    session: requests.Session | None = None,
) -> str:
    """Answer the consent page and return the ``Location`` it redirects to (not followed).

    ``organisations`` are ticked by caption (or tenant id); every other organisation is
    unticked. When None, the page's own defaults are kept, or the first one is ticked if the
    page pre-selects none.
    """
    session = session or requests.Session()
    page = fetch(authorize_url, session)
    assert page.status == 200, f"Consent page answered {page.status}: {page.html[:2000]}"
    assert page.form is not None, f"No consent form on the page: {page.html[:2000]}"
    form = page.form
    choices = [f for f in form.fields if f.name == "tenant_id"]
    if organisations is not None:
        for wanted in organisations:
            if not any(_names_match(wanted, c) for c in choices):
                offered = [c.label for c in choices]
                raise AssertionError(f"Organisation {wanted!r} is not offered; offered: {offered}")
        for control in choices:
            control.checked = any(_names_match(w, control) for w in organisations)
    elif choices and not any(c.checked for c in choices):
        choices[0].checked = True

    decision = "allow" if allow else "cancel"
    data: list[tuple[str, str]] = []
    pressed = False
    for control in form.fields:
        if not control.name:
            continue
        if control.type in ("submit", "image", "button") or control.tag == "button":
            if control.name == "decision" and control.value == decision and not pressed:
                data.append((control.name, control.value))
                pressed = True
            continue
        if control.type in ("checkbox", "radio"):
            if control.checked:
                data.append((control.name, control.value))
            continue
        if control.name == "decision":
            continue
        data.append((control.name, control.value))
    if not pressed:
        data.append(("decision", decision))

    action = urljoin(page.url, form.action or page.url)
    if form.method == "post":
        response = session.post(action, data=data, timeout=TIMEOUT, allow_redirects=False)
    else:
        response = session.get(action, params=data, timeout=TIMEOUT, allow_redirects=False)
    assert response.status_code in (301, 302, 303, 307), (
        f"The consent form answered {response.status_code}, not a redirect: {response.text[:2000]}"
    )
    return response.headers["Location"]
