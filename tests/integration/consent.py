"""Drive the sandbox's consent screen the way a person would: read the form, tick, submit."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


class _Forms(HTMLParser):
    """Collects each form's action, method, inputs and buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._label_for_checkbox: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": attributes.get("action", ""),
                    "method": attributes.get("method", "get").lower(),
                    "inputs": [],
                    "buttons": [],
                }
            )
        elif not self.forms:
            return
        elif tag == "input":
            kind = attributes.get("type", "text").lower()
            if kind == "submit":
                self.forms[-1]["buttons"].append(attributes)
            else:
                self.forms[-1]["inputs"].append(attributes | {"label": ""})
                self._label_for_checkbox = self.forms[-1]["inputs"][-1]
        elif tag == "button":
            self.forms[-1]["buttons"].append(attributes | {"text": ""})

    def handle_data(self, data: str) -> None:
        if self.forms and self.forms[-1]["buttons"] and "text" in self.forms[-1]["buttons"][-1]:
            self.forms[-1]["buttons"][-1]["text"] += data.strip()
        if self._label_for_checkbox is not None and data.strip():
            self._label_for_checkbox["label"] += data.strip()
            self._label_for_checkbox = None


def consent(
    authorize_url: str,
    *,
    allow: bool = True,
    organisations: list[str] | None = None,
    session: requests.Session | None = None,
) -> str:
    """Answer the consent screen; return the URL Xero redirects the browser to.

    ``organisations`` are tenant ids or names to tick; None keeps the page's default choice.
    """
    session = session or requests.Session()
    page = session.get(authorize_url, timeout=10)
    page.raise_for_status()
    parser = _Forms()
    parser.feed(page.text)
    wanted = "allow" if allow else "cancel"
    for form in parser.forms:
        for button in form["buttons"]:
            label = (button.get("text") or button.get("value") or "").lower()
            if wanted in label:
                data: list[tuple[str, str]] = []
                for field in form["inputs"]:
                    name, kind = field.get("name"), field.get("type", "text").lower()
                    if not name:
                        continue
                    if kind in ("checkbox", "radio"):
                        if organisations is None:
                            ticked = "checked" in field
                        else:
                            ticked = field.get("value") in organisations or any(
                                org in field["label"] for org in organisations
                            )
                        if ticked:
                            data.append((name, field.get("value", "on")))
                    else:
                        data.append((name, field.get("value", "")))
                if button.get("name"):
                    data.append((button["name"], button.get("value", "")))
                response = session.request(
                    form["method"].upper(),
                    urljoin(page.url, form["action"] or page.url),
                    data=data,
                    allow_redirects=False,
                    timeout=10,
                )
                assert response.status_code in (302, 303), response.text[:500]
                return response.headers["Location"]
    raise AssertionError(f"No {wanted!r} button on the consent page:\n{page.text[:2000]}")
