#!/usr/bin/env python3
"""Holds a running `qudao serve` to its OpenAPI contract (connectors/openapi.yaml).

Against the real Kafka broker of the ctest fixture: simulates a channel into a fresh topic (with 1 %
malformed records, so that there are dead letters), starts `qudao serve` with a tokens file of every
role, waits until every record is applied and every dead letter relayed, then:

  routes    the spec's (method, path) pairs and the server's (api_routes(), printed by --routes) are
            the same set: an endpoint the spec does not describe fails, and so does a spec entry the
            server does not serve;
  examples  every operation's x-qudao-test examples are sent; the status must be the one expected;
            the query parameters of every example must be declared, and those of an example that
            expects 2xx (and its JSON body) valid against the parameters' schemas (requestBody);
  generic   from the spec alone: no token and an unknown token get 401 wherever the operation has a
            security requirement; every role its requirement names is let through (neither 401 nor
            403) and every other role gets 403; every other method on the path gets 405 with an
            Allow header naming the spec's methods; an unknown path gets 404 (with a token) or 401
            (without);
  answers   every answer above is validated against the spec: its status must be documented for the
            operation, its required headers present and matching their schemas, its content type one
            the spec lists, and its body valid against that schema (python3-jsonschema, Draft
            2020-12, $refs resolved within the spec);
  coverage  every documented status of every operation was produced by some check, unless its
            response says why it cannot be (x-qudao-untested).

The example format is described at the top of connectors/openapi.yaml. Adding an endpoint means
adding its spec entry with examples; nothing here changes.

Usage: openapi_check.py --spec YAML --qudao BIN --routes BIN --brokers HOST:PORT [--keep]
Prints one line per failed check and `N passed, M failed`; exits 0 only if nothing failed.
"""
import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import jsonschema
import yaml

METHODS = ["get", "put", "post", "delete", "patch"]  # the ones a qudao route may use
# The test's tokens file: one token per entry; a role's stand-in for the generic 403 checks.
TOKEN_ENTRIES = {
    "hq": {"role": "hq"},
    "east": {"role": "regional", "regions": ["East"]},
    "west": {"role": "regional", "regions": ["West"]},
    "metrics": {"role": "metrics"},
    "ingest": {"role": "ingest"},
}
ROLE_TOKEN = {"hq": "hq", "regional": "east", "metrics": "metrics", "ingest": "ingest"}
SIMULATION = ["--partitions", "4", "--seed", "7", "--regions", "5", "--days", "20", "--malformed-rate", "0.01"]
READY_TIMEOUT_S = 180


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)
        return ok


class Spec:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=self.doc)

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            _, obj = self.resolver.resolve(obj["$ref"])
        return obj

    def operations(self):
        for path, item in self.doc["paths"].items():
            for method in METHODS:
                if method in item:
                    yield path, method.upper(), item[method]

    def methods(self, path):
        return {m.upper() for m in METHODS if m in self.doc["paths"][path]}

    def security(self, op):
        return op.get("security", self.doc.get("security", []))

    def validate(self, schema, instance):
        """Validation error messages of `instance` against `schema` (empty: valid)."""
        validator = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in validator.iter_errors(instance)]


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body


def request(port, method, target, token=None, example=None):
    """Sends one request; `example` may give its body (x-qudao-test's body, body_text, content_type)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    example = example or {}
    if "body" in example:
        data = json.dumps(example["body"]).encode()
    elif "body_text" in example:
        data = example["body_text"].encode()
    if data is not None:
        headers["Content-Type"] = example.get("content_type", "application/json")
    try:
        conn.request(method, target, body=data, headers=headers)
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def check_answer(spec, checks, op, reply, what):
    """The answer's status, headers, content type and body against the operation's responses."""
    responses = op["responses"]
    response = responses.get(str(reply.status), responses.get("default"))
    if not checks.check(response is not None, f"{what}: status {reply.status} is not documented "
                                              f"(documented: {', '.join(responses)}); body {reply.body[:200]}"):
        return
    response = spec.deref(response)
    for name, header in response.get("headers", {}).items():
        header = spec.deref(header)
        value = reply.headers.get(name.lower())
        if value is None:
            checks.check(not header.get("required", False), f"{what}: required header {name} missing")
        elif "schema" in header:
            errors = spec.validate(header["schema"], value)
            checks.check(not errors, f"{what}: header {name}: {value!r}: {'; '.join(errors)}")
    content = response.get("content")
    if not content:
        checks.check(reply.body == "", f"{what}: a body the spec does not describe: {reply.body[:200]}")
        return
    media = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if not checks.check(media in content, f"{what}: content type {media!r}, the spec has {', '.join(content)}"):
        return
    schema = content[media].get("schema", {})
    if media == "application/json":
        try:
            body = json.loads(reply.body)
        except ValueError as e:
            checks.check(False, f"{what}: body is not JSON ({e}): {reply.body[:200]}")
            return
    else:
        body = reply.body
    errors = spec.validate(schema, body)
    checks.check(not errors, f"{what}: body does not match the spec: {'; '.join(errors[:5])}")


def check_request(spec, checks, op, declared, sent, example, what):
    """A successful example's query parameters and body against the operation's parameters and requestBody."""
    for name, parameter in declared.items():
        if name not in sent:
            checks.check(not parameter.get("required", False), f"{what}: required parameter {name} not sent")
            continue
        value = sent[name]
        if parameter.get("schema", {}).get("type") in ("integer", "number"):
            try:
                value = int(value) if parameter["schema"]["type"] == "integer" else float(value)
            except ValueError:
                pass  # left a string: the schema's type check names the problem
        errors = spec.validate(parameter.get("schema", {}), value)
        checks.check(not errors, f"{what}: parameter {name}={sent[name]}: {'; '.join(errors)}")
    body = spec.deref(op.get("requestBody", {}))
    if "body" in example:
        media = example.get("content_type", "application/json")
        schema = body.get("content", {}).get(media, {}).get("schema")
        if checks.check(schema is not None, f"{what}: the spec has no {media} request body"):
            errors = spec.validate(schema, example["body"])
            checks.check(not errors, f"{what}: request body does not match the spec: {'; '.join(errors[:5])}")
    else:
        checks.check(not body.get("required", False), f"{what}: the spec requires a request body")


def json_pointer(doc, pointer):
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def check_examples(spec, checks, port, tokens, path, method, op, produced):
    admitted = admitted_roles(spec, op)
    default_token = "hq" if admitted is None or "hq" in admitted else ROLE_TOKEN[sorted(admitted)[0]]
    declared = {p["name"]: p for p in map(spec.deref, op.get("parameters", [])) if p.get("in") == "query"}
    examples = op.get("x-qudao-test", [])
    checks.check(any(200 <= e["status"] < 300 for e in examples), f"{method} {path}: no x-qudao-test example answers 2xx")
    for example in examples:
        query = example.get("query", "")
        target = path + (f"?{query}" if query else "")
        name = example.get("token", default_token)
        what = f"{method} {target} as {name}"
        sent = dict(pair.split("=", 1) if "=" in pair else (pair, "") for pair in query.split("&") if pair)
        for key in sent:
            checks.check(key in declared, f"{what}: query parameter {key} is not in the spec")
        if 200 <= example["status"] < 300:  # a request the spec calls valid must be one
            check_request(spec, checks, op, declared, sent, example, what)
        token = {"none": None, "unknown": "not-a-token-of-this-server-0123456789"}.get(name, tokens.get(name, ""))
        if not checks.check(name in ("none", "unknown") or name in tokens, f"{what}: unknown token name {name}"):
            continue
        reply = request(port, method, target, token, example)
        produced.add(reply.status)
        if not checks.check(reply.status == example["status"],
                            f"{what}: status {reply.status}, expected {example['status']}: {reply.body[:300]}"):
            continue
        check_answer(spec, checks, op, reply, what)
        for pattern in example.get("body_matches", []):
            checks.check(re.search(pattern, reply.body) is not None, f"{what}: body does not match /{pattern}/")
        for pointer, n in example.get("array_lengths", {}).items():
            try:
                got = len(json_pointer(json.loads(reply.body), pointer))
            except (ValueError, KeyError, IndexError, TypeError) as e:
                got = f"nothing ({e!r})"
            checks.check(got == n, f"{what}: {pointer} has {got} items, expected {n}")


def admitted_roles(spec, op):
    """The roles an operation admits (the bearer requirement's names), or None if it is public."""
    security = spec.security(op)
    if not security:
        return None
    roles = set()
    for requirement in security:
        roles.update(requirement.get("bearer", []))
    return roles


def check_access(spec, checks, port, tokens, path, method, op, produced):
    admitted = admitted_roles(spec, op)
    first_ok = next((e for e in op.get("x-qudao-test", []) if 200 <= e["status"] < 300), {})
    query = first_ok.get("query", "")
    target = path + (f"?{query}" if query else "")
    if admitted is None:
        reply = request(port, method, target, None, first_ok)
        produced.add(reply.status)
        checks.check(200 <= reply.status < 300, f"{method} {target}: public, but {reply.status} without a token")
        return
    checks.check(admitted <= set(ROLE_TOKEN), f"{method} {path}: unknown role in security: {admitted - set(ROLE_TOKEN)}")
    for token, challenge in ((None, r'^Bearer realm="qudao"$'),
                             ("not-a-token-of-this-server-0123456789", r'^Bearer realm="qudao", error="invalid_token"$')):
        what = f"{method} {target} {'without a token' if token is None else 'with an unknown token'}"
        reply = request(port, method, target, token, first_ok)
        produced.add(reply.status)
        if checks.check(reply.status == 401, f"{what}: status {reply.status}, expected 401"):
            check_answer(spec, checks, op, reply, what)
            checks.check(re.match(challenge, reply.headers.get("www-authenticate", "")) is not None,
                         f"{what}: WWW-Authenticate {reply.headers.get('www-authenticate')!r}")
    for role in sorted(set(ROLE_TOKEN)):
        what = f"{method} {target} as role {role}"
        reply = request(port, method, target, tokens[ROLE_TOKEN[role]], first_ok)
        produced.add(reply.status)
        if role in admitted:
            ok = checks.check(reply.status not in (401, 403), f"{what}: status {reply.status}, but the spec admits {role}")
        else:
            ok = checks.check(reply.status == 403, f"{what}: status {reply.status}, expected 403 (not admitted)")
        if ok:
            check_answer(spec, checks, op, reply, what)


def check_methods(spec, checks, port, tokens, path):
    allowed = spec.methods(path)
    error_schema = {"$ref": "#/components/schemas/Error"}
    for method in sorted({m.upper() for m in METHODS} - allowed):
        what = f"{method} {path}"
        reply = request(port, method, path, tokens["hq"])
        if not checks.check(reply.status == 405, f"{what}: status {reply.status}, expected 405 (the spec has "
                                                 f"{', '.join(sorted(allowed))})"):
            continue
        got = {m.strip() for m in reply.headers.get("allow", "").split(",") if m.strip()}
        checks.check(got == allowed, f"{what}: Allow {sorted(got)}, the spec has {sorted(allowed)}")
        try:
            errors = spec.validate(error_schema, json.loads(reply.body))
        except ValueError as e:
            errors = [f"not JSON: {e}"]
        checks.check(not errors, f"{what}: body: {'; '.join(errors)}")


def check_unknown_path(spec, checks, port, tokens):
    error_schema = {"$ref": "#/components/schemas/Error"}
    for token, status in ((tokens["hq"], 404), (None, 401)):
        reply = request(port, "GET", "/v1/no-such-endpoint", token)
        what = f"GET /v1/no-such-endpoint {'as hq' if token else 'without a token'}"
        if checks.check(reply.status == status, f"{what}: status {reply.status}, expected {status}"):
            checks.check(not spec.validate(error_schema, json.loads(reply.body)), f"{what}: body {reply.body[:200]}")


def check_routes(spec, checks, routes_bin):
    out = subprocess.run([routes_bin], check=True, capture_output=True, text=True).stdout
    server = {tuple(line.split(" ", 1)) for line in out.splitlines() if line.strip()}
    described = {(method, path) for path, method, _ in spec.operations()}
    for method, path in sorted(server - described):
        checks.check(False, f"routes: the server answers {method} {path}, which connectors/openapi.yaml does not describe")
    for method, path in sorted(described - server):
        checks.check(False, f"routes: connectors/openapi.yaml describes {method} {path}, which the server does not answer")
    checks.check(len(server) > 0, "routes: the server lists no routes")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, token, events, malformed, serve):
    """Until every record is applied or rejected and every dead letter is relayed."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise RuntimeError(f"qudao serve exited with {serve.returncode}")
        try:
            reply = request(port, "GET", "/v1/status", token)
            if reply.status == 200:
                last = json.loads(reply.body)
                if (last["totals"]["consumed"] == events and
                        last.get("outbox", {}).get("delivered_dead_letters", 0) == malformed):
                    return last
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"serve did not consume {events} records and relay {malformed} dead letters in "
                       f"{READY_TIMEOUT_S} s; last status: {last}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--qudao", required=True, help="the qudao binary")
    ap.add_argument("--routes", required=True, help="the program printing api_routes()")
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data, logs)")
    args = ap.parse_args()
    args.qudao = os.path.abspath(args.qudao)  # run from the temporary directory

    spec = Spec(args.spec)
    checks = Checks()
    check_routes(spec, checks, args.routes)

    work = tempfile.mkdtemp(prefix="qudao-openapi-")
    tokens = {name: f"qudao-openapi-{name}-{secrets.token_hex(16)}" for name in TOKEN_ENTRIES}
    with open(os.path.join(work, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump({"tokens": [dict(name=n, token=tokens[n], **e) for n, e in TOKEN_ENTRIES.items()]}, f)
    topic = f"qudao-openapi-{os.getpid()}-{time.time_ns() % 1_000_000_007}"
    serve = None
    log_path = os.path.join(work, "serve.log")
    try:
        sim = subprocess.run([args.qudao, "simulate", "-b", args.brokers, "-t", topic] + SIMULATION,
                             capture_output=True, text=True, cwd=work)
        if sim.returncode != 0:
            raise RuntimeError(f"simulate failed: {sim.stderr[-2000:]}")
        summary = json.loads(sim.stdout)
        port = free_port()
        with open(log_path, "w", encoding="utf-8") as log:
            serve = subprocess.Popen([args.qudao, "serve", "-b", args.brokers, "-t", topic, "--data",
                                      os.path.join(work, "data"), "--http-port", str(port), "--commit-interval-ms",
                                      "20", "--tokens", os.path.join(work, "tokens.json")],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=work)
        status = wait_ready(port, tokens["hq"], summary["events"], summary["malformed"], serve)
        print(f"serve applied {status['totals']['applied']} and rejected {status['totals']['rejected']} of "
              f"{summary['events']} records", flush=True)

        for path, method, op in spec.operations():
            produced = set()
            check_access(spec, checks, port, tokens, path, method, op, produced)
            check_examples(spec, checks, port, tokens, path, method, op, produced)
            for code, response in op["responses"].items():
                if code != "default" and int(code) not in produced:
                    checks.check("x-qudao-untested" in spec.deref(response),
                                 f"{method} {path}: no check produced documented status {code} "
                                 f"(add an x-qudao-test example, or x-qudao-untested with the reason)")
        for path in spec.doc["paths"]:
            check_methods(spec, checks, port, tokens, path)
        check_unknown_path(spec, checks, port, tokens)
    except Exception as e:  # a failure to set up is a failed check, with the server's log
        checks.check(False, f"{type(e).__name__}: {e}")
    finally:
        if serve is not None and serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                checks.check(serve.wait(timeout=60) == 0, f"qudao serve exited with {serve.returncode} on SIGTERM")
            except subprocess.TimeoutExpired:
                serve.kill()
                checks.check(False, "qudao serve did not stop within 60 s of SIGTERM")
        if checks.failed and os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                print("--- serve.log (last lines) ---\n" + "".join(f.readlines()[-40:]))
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
