"""`make demo`: prepare the demo CRM, then run the Xero sandbox, a worker and the web server.

python -m crm_demo.demo prepare   # .env with demo values, migrations, demo data
python -m crm_demo.demo run       # sandbox + django-q2 worker + web server; Ctrl-C stops all
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = BASE_DIR / ".env"
VAR_DIR = BASE_DIR / "var"
SANDBOX_STATE = VAR_DIR / "sandbox-state.json"
WEB_HOST, WEB_PORT = "127.0.0.1", 8000
SANDBOX_HOST, SANDBOX_PORT = "127.0.0.1", 8765
SANDBOX_URL = f"http://{SANDBOX_HOST}:{SANDBOX_PORT}"
DEMO_CLIENT_ID = "crm-demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-crm-2026"
CALLBACK_PATH = "/integrations/xero/callback/"
DEMO_ORGANISATIONS = [
    {
        "name": "Demo Company (NZ)",
        "country_code": "NZ",
        "base_currency": "NZD",
        "multicurrency": True,
        "contacts": 40,
        # Customers the demo CRM has too (seed_demo): connecting links them, by email and by
        # name, instead of creating them a second time; the import's log says so.
        "customers_in_the_crm": [
            {"Name": "Harbour Bikes Limited", "EmailAddress": "ana@harbourbikes.example"},
            {"Name": "Kowhai Cafe"},
        ],
    },
    {
        "name": "Starter Plan Ltd (AU)",
        "country_code": "AU",
        "base_currency": "AUD",
        "multicurrency": False,
        "daily_limit": 1000,
        "contacts": 10,
    },
]


def read_env_file() -> dict[str, str]:
    """The variables already in .env (KEY=value lines)."""
    values: dict[str, str] = {}
    if ENV_FILE.is_file():
        for line in ENV_FILE.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def ensure_env_file() -> dict[str, str]:
    """Add the demo's values to .env without overwriting anything already set there."""
    from cryptography.fernet import Fernet

    existing = read_env_file()
    defaults = {
        "SECRET_KEY": secrets.token_urlsafe(40),
        "XERO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "XERO_CLIENT_ID": DEMO_CLIENT_ID,
        "XERO_CLIENT_SECRET": secrets.token_urlsafe(24),
        "XERO_LOGIN_URL": SANDBOX_URL,
        "XERO_IDENTITY_URL": SANDBOX_URL,
        "XERO_API_URL": SANDBOX_URL,
        "XERO_WEBHOOK_KEY": secrets.token_urlsafe(32),
    }
    missing = {key: value for key, value in defaults.items() if key not in existing}
    if missing:
        with ENV_FILE.open("a") as handle:
            if not existing:
                handle.write("# Written by `make demo`: demo values; see .env.example.\n")
            for key, value in missing.items():
                handle.write(f"{key}={value}\n")
    return {**defaults, **existing}


def manage(*args: str) -> None:
    """Run a manage.py command with the project's interpreter, failing loudly."""
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True)


def prepare() -> None:
    """Everything the demo needs before it starts: .env, database, demo data."""
    VAR_DIR.mkdir(exist_ok=True)
    ensure_env_file()
    manage("migrate", "--noinput")
    manage("seed_demo")


def control(method: str, path: str, payload: dict | None = None) -> object:
    """Call the sandbox's control API."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        f"{SANDBOX_URL}/_sandbox/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def wait_for_sandbox(process: subprocess.Popen, seconds: float = 30) -> None:
    """Wait until the sandbox answers, or fail if it died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("The Xero sandbox stopped while starting; see its output above.")
        try:
            urllib.request.urlopen(f"{SANDBOX_URL}/_sandbox/", timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"The Xero sandbox did not answer on {SANDBOX_URL} within {seconds:.0f} s.")


def configure_sandbox(env_values: dict[str, str], fresh_state: bool) -> None:
    """Register the demo app (every start) and the demo organisations (first start only)."""
    control(
        "POST",
        "apps",
        {
            "client_id": env_values["XERO_CLIENT_ID"],
            "client_secret": env_values["XERO_CLIENT_SECRET"],
            "redirect_uris": [
                f"http://{WEB_HOST}:{WEB_PORT}{CALLBACK_PATH}",
                f"http://localhost:{WEB_PORT}{CALLBACK_PATH}",
            ],
        },
    )
    if fresh_state:
        for organisation in DEMO_ORGANISATIONS:
            values = dict(organisation)
            shared = values.pop("customers_in_the_crm", [])
            made = control("POST", "organisations", values)
            if shared and isinstance(made, dict):
                tenant_id = made["tenant_id"]
                control("POST", f"organisations/{tenant_id}/contacts", {"contacts": shared})


def register_webhook(env_values: dict[str, str], web: subprocess.Popen) -> bool:
    """Once the web server answers, point the sandbox's webhooks at it (Intent to Receive
    runs against the CRM's endpoint), so contact changes made in the sandbox arrive at once.
    True when they are registered."""
    webhook_url = f"http://{WEB_HOST}:{WEB_PORT}/integrations/xero/webhooks/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and web.poll() is None:
        try:
            urllib.request.urlopen(f"http://{WEB_HOST}:{WEB_PORT}/accounts/login/", timeout=1)
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    try:
        control("POST", "webhooks", {"url": webhook_url, "key": env_values["XERO_WEBHOOK_KEY"]})
    except (urllib.error.URLError, OSError) as exc:
        print(f"Webhooks not registered ({exc}); contact changes arrive by the schedule.")
        return False
    return True


def banner(webhooks: bool) -> str:
    """What the demo prints once everything answers."""
    lines = [
        "",
        f"  Demo CRM:      http://{WEB_HOST}:{WEB_PORT}/",
        f"  Sign in as:    {DEMO_EMAIL} / {DEMO_PASSWORD}",
        f"  Admin:         http://{WEB_HOST}:{WEB_PORT}/admin/  (the same sign-in: the demo",
        "                 user is a superuser; operator@example.com, same password, is staff",
        "                 who review syncs)",
        f'  Xero sandbox:  {SANDBOX_URL}/_sandbox/  (what has arrived "in Xero")',
        "  Emails:        alerts to the account's managers are printed here (console backend).",
    ]
    if webhooks:
        lines += [
            "  Webhooks:      registered. Xero's Intent to Receive check sent deliberately",
            "                 mis-signed calls, which the CRM refused with 401 as Xero requires",
            "                 (those lines are not printed: they are not failures).",
        ]
    lines += ["  Stop with Ctrl-C.", ""]
    return "\n".join(lines)


def run() -> None:
    """Start the sandbox, the worker and the web server; stop all three on Ctrl-C."""
    env_values = ensure_env_file()
    VAR_DIR.mkdir(exist_ok=True)
    fresh_state = not SANDBOX_STATE.exists()
    processes: list[subprocess.Popen] = []

    def stop_all(*_: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    try:
        sandbox = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xero_integration.sandbox",
                "--host",
                SANDBOX_HOST,
                "--port",
                str(SANDBOX_PORT),
                "--state",
                str(SANDBOX_STATE),
            ]
        )
        processes.append(sandbox)
        wait_for_sandbox(sandbox)
        configure_sandbox(env_values, fresh_state)
        manage_py = str(BASE_DIR / "manage.py")
        processes.append(subprocess.Popen([sys.executable, manage_py, "qcluster"]))
        processes.append(
            subprocess.Popen(
                [sys.executable, manage_py, "runserver", f"{WEB_HOST}:{WEB_PORT}", "--noreload"]
            )
        )
        webhooks = register_webhook(env_values, processes[-1])
        print(banner(webhooks), flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("A demo process stopped; stopping the others.", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: `prepare` or `run`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=["prepare", "run"])
    args = parser.parse_args(argv)
    os.chdir(BASE_DIR)
    if args.step == "prepare":
        prepare()
    else:
        run()


if __name__ == "__main__":
    main()
