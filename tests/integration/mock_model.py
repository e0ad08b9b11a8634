"""mock_model.py — integration tests of keel-mock-model (examples/mock-model):
the real binary on a loopback port, driven over HTTP with the stdlib.

Covers both wire formats byte for byte (text, json, tool calls, usage, stop
reasons), `when` matching, repeat/sticky, exhaustion, scripted errors with
Retry-After, raw bodies, request validation (400) and auth (401), the 413
cap, 404s, the records (and the --log file), /_mock/script, /_mock/reset,
/_mock/stats, delays (a delayed reply holds only its own connection, and
SIGTERM does not wait it out), concurrency, and bad command lines/scripts.

KEEL_BUILD_DIR (set by ctest) names the build folder holding the binary.
Prints "N passed, N failed"; exit status 1 if any test failed."""
import atexit
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

BUILD = os.environ.get("KEEL_BUILD_DIR") or "build"
BIN = os.path.join(BUILD, "keel-mock-model")
TMP = tempfile.mkdtemp(prefix="keel-mock-")

OPENAI_AUTH = {"Authorization": "Bearer sk-test-openai-123"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test-456", "anthropic-version": "2023-06-01"}


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Mock:
    """keel-mock-model with a script; ready once it printed its address."""

    def __init__(self, script, extra=()):
        text = script if isinstance(script, str) else json.dumps(script)
        self.script_path = write("script-%d.json" % time.monotonic_ns(), text)
        self.err_path = os.path.join(TMP, "stderr-%d.txt" % time.monotonic_ns())
        self.err = open(self.err_path, "w+")
        self.proc = subprocess.Popen([BIN, "--script", self.script_path] + list(extra),
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        # A test that fails before stop() leaves no server behind.
        atexit.register(self._reap)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on http://"):
            self.proc.wait()
            raise RuntimeError("mock did not start: %r %s" % (line, open(self.err_path).read()))
        self.url = line.split("listening on ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])

    def _reap(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def request(self, method, path, body=None, headers=None, timeout=30):
        """Returns (status, headers, raw body bytes)."""
        data = body if isinstance(body, (bytes, type(None))) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=dict(headers or {}))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def openai(self, body, headers=OPENAI_AUTH, path="/v1/chat/completions"):
        return self.request("POST", path, body, headers)

    def anthropic(self, body, headers=ANTHROPIC_AUTH, path="/v1/messages"):
        return self.request("POST", path, body, headers)

    def records(self):
        status, _, raw = self.request("GET", "/_mock/requests")
        assert status == 200
        return json.loads(raw)

    def stats(self):
        status, _, raw = self.request("GET", "/_mock/stats")
        assert status == 200
        return json.loads(raw)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.err.close()
        assert rc == 0, "exit %d: %s" % (rc, open(self.err_path).read())


def user(text, model="gpt-4o-mini", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def auser(text, model="claude-sonnet-4", **extra):
    body = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---- wire formats, byte for byte -------------------------------------------

@test
def openai_shapes():
    # The script is sent as text so the number keeps its form (2.50).
    m = Mock(json.dumps({"responses": [
        {"tool_calls": [{"name": "crm__lookup_account", "arguments": {"id": "A-1", "n": 2.5}},
                        {"name": "tracker__search", "arguments_text": "{not json"}]},
        {"content": "Hello, world", "usage": {"input_tokens": 12, "output_tokens": 3}},
        {"json": {"severity": "high", "needs_engineering": True, "tags": ["a", "b"]}},
        {"content": "I was cut", "stop": "length"},
        {"content": "Checking.", "tool_calls": [{"name": "t"}]},
    ]}).replace("2.5", "2.50"))
    body = user("look up A-1")
    status, headers, raw = m.openai(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    created = json.loads(raw)["created"]
    assert abs(created - time.time()) < 600
    expect = ('{"id":"chatcmpl-mock-1","object":"chat.completion","created":%d,'
              '"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
              '"content":null,"tool_calls":[{"id":"call_1_1","type":"function","function":'
              '{"name":"crm__lookup_account","arguments":"{\\"id\\":\\"A-1\\",\\"n\\":2.50}"}},'
              '{"id":"call_1_2","type":"function","function":{"name":"tracker__search",'
              '"arguments":"{not json"}}]},"finish_reason":"tool_calls"}],"usage":'
              '{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}')
    sent = len(json.dumps(body).encode())
    out = (len("crm__lookup_account") + len('{"id":"A-1","n":2.50}') + len("tracker__search") +
           len("{not json")) // 4
    assert raw.decode() == expect % (created, sent // 4, out, sent // 4 + out), raw

    status, _, raw = m.openai(user("hi"), path="/chat/completions")
    r = json.loads(raw)
    assert status == 200 and r["id"] == "chatcmpl-mock-2"
    msg = r["choices"][0]["message"]
    assert msg == {"role": "assistant", "content": "Hello, world"}, msg  # no tool_calls key
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}

    status, _, raw = m.openai(user("json"))
    r = json.loads(raw)
    text = r["choices"][0]["message"]["content"]
    assert text == '{"severity":"high","needs_engineering":true,"tags":["a","b"]}', text
    assert r["usage"]["completion_tokens"] == len(text) // 4

    status, _, raw = m.openai(user("long"))
    assert json.loads(raw)["choices"][0]["finish_reason"] == "length"

    status, _, raw = m.openai(user("both"))
    r = json.loads(raw)["choices"][0]
    assert r["message"]["content"] == "Checking."
    assert r["message"]["tool_calls"][0]["function"] == {"name": "t", "arguments": "{}"}
    assert r["message"]["tool_calls"][0]["id"] == "call_5_1"
    assert r["finish_reason"] == "tool_calls"
    m.stop()


@test
def anthropic_shapes():
    m = Mock({"responses": [
        {"content": "Let me check.",
         "tool_calls": [{"name": "crm__lookup_account", "arguments": {"id": "A-1"}},
                        {"name": "bad", "arguments_text": "{\"id\": "},
                        {"name": "arr", "arguments": [1, 2]}]},
        {"content": "Done", "usage": {"input_tokens": 7, "output_tokens": 1}},
        {"json": {"ok": True}, "stop": "length"},
    ]})
    body = auser("hello", system="You are terse.")
    status, headers, raw = m.anthropic(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    sent = len(json.dumps(body).encode())
    out = (len("Let me check.") + len("crm__lookup_account") + len('{"id":"A-1"}') +
           len("bad") + len('{"id": ') + len("arr") + len("[1,2]")) // 4
    expect = ('{"id":"msg_mock_1","type":"message","role":"assistant","model":"claude-sonnet-4",'
              '"content":[{"type":"text","text":"Let me check."},{"type":"tool_use",'
              '"id":"call_1_1","name":"crm__lookup_account","input":{"id":"A-1"}},'
              '{"type":"tool_use","id":"call_1_2","name":"bad","input":{"_raw":"{\\"id\\": "}},'
              '{"type":"tool_use","id":"call_1_3","name":"arr","input":{"_raw":"[1,2]"}}],'
              '"stop_reason":"tool_use","stop_sequence":null,'
              '"usage":{"input_tokens":%d,"output_tokens":%d}}') % (sent // 4, out)
    assert raw.decode() == expect, raw

    status, _, raw = m.anthropic(auser("x"), path="/messages")
    assert status == 200
    assert raw.decode() == ('{"id":"msg_mock_2","type":"message","role":"assistant",'
                            '"model":"claude-sonnet-4","content":[{"type":"text","text":"Done"}],'
                            '"stop_reason":"end_turn","stop_sequence":null,'
                            '"usage":{"input_tokens":7,"output_tokens":1}}'), raw
    status, _, raw = m.anthropic(auser("y"))
    r = json.loads(raw)
    assert r["content"] == [{"type": "text", "text": '{"ok":true}'}]
    assert r["stop_reason"] == "max_tokens"
    assert r["usage"]["output_tokens"] == 2  # 11 bytes / 4
    m.stop()


# ---- matching and consumption ----------------------------------------------

@test
def when_matching():
    m = Mock({"responses": [
        {"when": {"model": "gpt-big"}, "content": "model"},
        {"when": {"system_contains": "triage"}, "content": "system", "sticky": True},
        {"when": {"last_user_contains": "refund"}, "content": "user", "sticky": True},
        {"when": {"last_message_contains": "ACCOUNT-42"}, "content": "tool result",
         "sticky": True},
        {"when": {"tool_offered": "crm__lookup_account"}, "content": "tool", "sticky": True},
        {"when": {"path": "anthropic", "last_user_contains": "only"}, "content": "anthropic",
         "sticky": True},
        {"when": {"model": "m2", "last_user_contains": "both"}, "content": "both",
         "sticky": True},
        {"content": "fallback", "sticky": True},
    ]})

    def text(status_raw):
        status, _, raw = status_raw
        assert status == 200, raw
        r = json.loads(raw)
        return r["choices"][0]["message"]["content"] if "choices" in r else r["content"][0]["text"]

    assert text(m.openai(user("hi", model="gpt-big"))) == "model"
    assert text(m.openai(user("hi", model="gpt-big"))) == "fallback"  # used up
    sys_msgs = {"model": "x", "messages": [{"role": "system", "content": "You triage tickets"},
                                           {"role": "user", "content": "hi"}]}
    assert text(m.openai(sys_msgs)) == "system"
    assert text(m.anthropic(auser("hi", system=[{"type": "text", "text": "triage!"}]))) == "system"
    assert text(m.anthropic(auser("hi", system="nothing"))) == "fallback"
    assert text(m.openai(user("I want a refund"))) == "user"
    assert text(m.anthropic(auser("refund please"))) == "user"
    # Tool results: OpenAI "tool" messages and Anthropic tool_result blocks
    # are the last message; the last *user* text is still the question.
    conv = {"model": "x", "messages": [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "crm__lookup_account", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"id\": \"ACCOUNT-42\"}"}]}
    assert text(m.openai(conv)) == "tool result"
    aconv = auser("look it up, refund")
    aconv["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "crm",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "ACCOUNT-42"}]}]}]
    # entry 2 (last_user_contains "refund") comes before entry 3 and matches:
    # the tool_result-only user message is skipped for last_user.
    assert text(m.anthropic(aconv)) == "user"
    aconv["messages"][0]["content"] = "look it up"
    assert text(m.anthropic(aconv)) == "tool result"
    tools = [{"type": "function", "function": {"name": "crm__lookup_account",
                                               "parameters": {"type": "object"}}}]
    assert text(m.openai(user("hi", tools=tools))) == "tool"
    assert text(m.anthropic(auser("hi", tools=[{"name": "crm__lookup_account",
                                                "input_schema": {"type": "object"}}]))) == "tool"
    assert text(m.openai(user("only"))) == "fallback"
    assert text(m.anthropic(auser("only"))) == "anthropic"
    assert text(m.openai(user("both", model="m1"))) == "fallback"
    assert text(m.openai(user("both", model="m2"))) == "both"
    entries = [r["entry"] for r in m.records()]
    assert entries == [0, 7, 1, 1, 7, 2, 2, 3, 2, 3, 4, 4, 7, 5, 7, 6], entries
    m.stop()


@test
def repeat_sticky_exhaustion():
    m = Mock([{"content": "a", "repeat": 2}, {"content": "b"}, {"when": {"model": "s"},
                                                                 "content": "s", "sticky": True}])
    got = [json.loads(m.openai(user("x"))[2])["choices"][0]["message"]["content"]
           for _ in range(3)]
    assert got == ["a", "a", "b"], got
    for _ in range(3):
        status, _, raw = m.openai(user("x", model="s"))
        assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "s"
    status, _, raw = m.openai(user("x"))
    assert status == 500
    assert json.loads(raw) == {"error": {
        "message": "mock: no script entry matches (3 entries, 2 used up)",
        "type": "server_error", "param": None, "code": None}}, raw
    status, _, raw = m.anthropic(auser("x"))
    assert status == 500
    assert json.loads(raw) == {"type": "error", "error": {
        "type": "api_error", "message": "mock: no script entry matches (3 entries, 2 used up)"}}
    recs = m.records()
    assert [r["entry"] for r in recs] == [0, 0, 1, 2, 2, 2, -1, -1]
    assert [r["status"] for r in recs][-2:] == [500, 500]
    assert m.stats() == {"calls": 8, "served": {"0": 2, "1": 1, "2": 3}, "remaining": 1}
    m.stop()


# ---- scripted errors and raw bodies ------------------------------------------

@test
def scripted_errors():
    m = Mock([{"status": 429, "retry_after": 2},
              {"status": 529, "error": "Overloaded"},
              {"status": 401},
              {"status": 503, "retry_after": 0, "error": "down"},
              {"status": 400, "error": "bad thing"}])
    status, headers, raw = m.openai(user("x"))
    assert status == 429 and headers["Retry-After"] == "2"
    assert json.loads(raw) == {"error": {"message": "mock: rate limit reached",
                                         "type": "requests", "param": None,
                                         "code": "rate_limit_exceeded"}}
    status, headers, raw = m.anthropic(auser("x"))
    assert status == 529 and headers.get("Retry-After") is None
    assert json.loads(raw) == {"type": "error", "error": {"type": "overloaded_error",
                                                          "message": "Overloaded"}}
    status, _, raw = m.anthropic(auser("x"))
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
    status, headers, raw = m.openai(user("x"))
    assert status == 503 and headers["Retry-After"] == "0"
    assert json.loads(raw)["error"]["message"] == "down"
    assert json.loads(raw)["error"]["type"] == "server_error"
    status, _, raw = m.anthropic(auser("x"))
    assert status == 400
    assert json.loads(raw) == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "bad thing"}}
    assert [r["status"] for r in m.records()] == [429, 529, 401, 503, 400]
    m.stop()

    m = Mock([{"status": 429, "retry_after": 7}])
    status, headers, raw = m.anthropic(auser("x"))
    assert status == 429 and headers["Retry-After"] == "7"
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"
    m.stop()


@test
def raw_bodies():
    m = Mock([{"body": "this is {not json"},
              {"body": "{\"choices\": []}", "status": 200},
              {"body": "<html>502 Bad Gateway</html>", "status": 502, "retry_after": 1}])
    status, _, raw = m.openai(user("x"))
    assert status == 200 and raw == b"this is {not json"
    status, _, raw = m.anthropic(auser("x"))
    assert status == 200 and raw == b'{"choices": []}'
    status, headers, raw = m.openai(user("x"))
    assert status == 502 and raw == b"<html>502 Bad Gateway</html>"
    assert headers["Retry-After"] == "1"
    m.stop()


# ---- validation and auth ---------------------------------------------------

def expect_400(m, send, body, needle, param=None):
    status, _, raw = send(body)
    assert status == 400, (status, raw, body)
    r = json.loads(raw)
    if "choices" in r or "content" in r:
        raise AssertionError("not an error: %r" % r)
    if r.get("type") == "error":  # Anthropic
        assert r["error"]["type"] == "invalid_request_error", r
        assert needle in r["error"]["message"], (needle, r)
    else:
        assert r["error"]["type"] == "invalid_request_error", r
        assert needle in r["error"]["message"], (needle, r)
        if param is not None:
            assert r["error"]["param"] == param, (param, r)


@test
def openai_validation():
    m = Mock([{"content": "ok", "sticky": True}])
    call = {"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}}
    cases = [
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "model"),
        ({"model": "m"}, "messages", "messages"),
        ({"model": "m", "messages": []}, "non-empty", "messages"),
        ({"model": "m", "messages": ["hi"]}, "must be an object", "messages[0]"),
        ({"model": "m", "messages": [{"role": "bot", "content": "x"}]}, "must be one of",
         "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "string or an array",
         "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"},
                                     {"role": "tool", "content": "r"}]}, "tool_call_id",
         "messages[1].tool_call_id"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"},
                                     {"role": "tool", "tool_call_id": "c1", "content": "r"}]},
         "preceding message with 'tool_calls'", None),
        ({"model": "m", "messages": [{"role": "assistant", "content": None,
                                      "tool_calls": [call]},
                                     {"role": "user", "content": "x"}]},
         "did not have response messages: c1", None),
        ({"model": "m", "messages": [{"role": "assistant", "content": None,
                                      "tool_calls": [{"id": "c1", "type": "function",
                                                      "function": {"name": "t",
                                                                   "arguments": {}}}]},
                                     {"role": "tool", "tool_call_id": "c1", "content": "r"}]},
         "a tool call must be", None),
        ({"model": "m", "messages": [{"role": "assistant"}]}, "needs content", None),
        (user("x", tools=[{"type": "function", "function": {"name": "crm/lookup"}}]),
         "^[a-zA-Z0-9_-]{1,64}$", "tools[0].function.name"),
        (user("x", tools=[{"type": "function", "function": {"name": "a" * 65}}]),
         "{1,64}", None),
        (user("x", tools=[{"function": {"name": "t"}}]), "\"type\": \"function\"", "tools[0]"),
        (user("x", tools=[{"type": "function", "function": {"name": "t", "parameters": []}}]),
         "JSON Schema object", "tools[0].function.parameters"),
        (user("x", tools=[{"type": "function", "function": {"name": "t"}},
                          {"type": "function", "function": {"name": "t"}}]), "unique", None),
        (user("x", max_tokens=0), "positive integer", "max_tokens"),
        (user("x", stream=True), "does not stream", "stream"),
        (user("x", response_format={"type": "yaml"}), "response_format.type", None),
        (user("x", response_format={"type": "json_schema",
                                    "json_schema": {"name": "my output", "schema": {}}}),
         "response_format.json_schema", "response_format.json_schema"),
        (user("x", tools=[]), "empty array", "tools"),
    ]
    for body, needle, param in cases:
        expect_400(m, m.openai, body, needle, param)
    status, _, raw = m.openai(b"{\"model\": ")
    assert status == 400 and "not valid JSON: line 1, column" in json.loads(raw)["error"]["message"]
    # A full, valid tool round passes.
    ok = {"model": "m", "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "q"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}],
        "tools": [{"type": "function", "function": {"name": "t", "description": "d",
                                                    "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "output", "schema": {"type": "object"},
                                            "strict": False}},
        "max_tokens": 100}
    assert m.openai(ok)[0] == 200
    recs = m.records()
    assert [r["entry"] for r in recs] == [-1] * (len(cases) + 1) + [0]
    assert recs[len(cases)]["body"] == "{\"model\": "  # not JSON: the raw text
    m.stop()


@test
def completion_tokens_only_models_refuse_max_tokens():
    # As OpenAI answers for its o-series and gpt-5 models, byte for byte in
    # the fields a client reads; other models and max_completion_tokens pass.
    m = Mock({"max_completion_tokens_only": ["o3-mini", "gpt-5"],
              "responses": [{"content": "ok", "sticky": True}]})
    status, _, raw = m.openai(user("x", model="o3-mini", max_tokens=50))
    assert status == 400, (status, raw)
    assert json.loads(raw) == {"error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                   "Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error", "param": "max_tokens",
        "code": "unsupported_parameter"}}, raw
    assert m.openai(user("x", model="o3-mini", max_completion_tokens=50))[0] == 200
    assert m.openai(user("x", model="gpt-5"))[0] == 200          # no limit at all
    assert m.openai(user("x", model="gpt-5", max_tokens=None))[0] == 200
    assert m.openai(user("x", model="gpt-4o", max_tokens=50))[0] == 200
    assert m.openai(user("x", model="gpt-5", max_tokens=50))[0] == 400
    # Validation comes first: a bad value is the ordinary 400.
    expect_400(m, m.openai, user("x", model="o3-mini", max_completion_tokens=0),
               "positive integer", "max_completion_tokens")
    # The Anthropic endpoint always takes max_tokens.
    assert m.anthropic(auser("x", model="o3-mini"))[0] == 200
    recs = m.records()
    assert [r["status"] for r in recs] == [400, 200, 200, 200, 200, 400, 400, 200], recs
    assert [r["entry"] for r in recs] == [-1, 0, 0, 0, 0, -1, -1, 0]
    assert m.stats()["served"] == {"0": 5}
    m.stop()


@test
def anthropic_validation():
    m = Mock([{"content": "ok", "sticky": True}])
    tu = {"type": "tool_use", "id": "t1", "name": "x", "input": {}}
    tr = {"type": "tool_result", "tool_use_id": "t1", "content": "r"}
    cases = [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (auser("x", max_tokens=0), "max_tokens"),
        (auser("x", max_tokens=1.5), "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "at least one message"),
        ({"model": "m", "max_tokens": 5,
          "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]},
         "top-level `system` parameter"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
         "\"user\" or \"assistant\""),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": ""}]},
         "non-empty content"),
        ({"model": "m", "max_tokens": 5,
          "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
         "text content blocks must be non-empty"),
        ({"model": "m", "max_tokens": 5,
          "messages": [{"role": "user", "content": [{"type": "video"}]}]}, "expected tags"),
        ({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": [tu]},
            {"role": "user", "content": "no result"}]}, "without `tool_result`"),
        ({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [tr]}]}, "unexpected `tool_use_id`"),
        ({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [tu]}]}, "cannot be sent by the user"),
        (auser("x", system=[{"type": "image"}]), "system.0"),
        (auser("x", tools=[{"name": "t"}]), "input_schema"),
        (auser("x", tools=[{"name": "t", "input_schema": {"type": "string"}}]),
         "\"type\": \"object\""),
        (auser("x", tools=[{"name": "a.b", "input_schema": {"type": "object"}}]), "pattern"),
    ]
    for body, needle in cases:
        expect_400(m, m.anthropic, body, needle)
    ok = {"model": "m", "max_tokens": 5, "system": "s", "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": [
            {"type": "text", "text": "checking"}, tu]},
        {"role": "user", "content": [tr]}],
        "tools": [{"name": "x", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}]}
    status, _, raw = m.anthropic(ok)
    assert status == 200, raw
    m.stop()


@test
def many_tool_calls():
    """Tool-call pairing at scale (ids are hashed; this once took minutes)."""
    m = Mock([{"content": "ok", "sticky": True}])
    n = 5000
    calls = [{"id": "c%d" % i, "type": "function", "function": {"name": "t", "arguments": "{}"}}
             for i in range(n)]
    answers = [{"role": "tool", "tool_call_id": "c%d" % i, "content": "r"} for i in range(n)]
    msgs = [{"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": calls}]
    assert m.openai({"model": "m", "messages": msgs + answers})[0] == 200
    status, _, raw = m.openai({"model": "m", "messages": msgs + answers[:1234] + answers[1235:]})
    assert status == 400 and json.loads(raw)["error"]["message"].endswith(
        "did not have response messages: c1234"), raw
    uses = [{"type": "tool_use", "id": "t%d" % i, "name": "x", "input": {}} for i in range(n)]
    results = [{"type": "tool_result", "tool_use_id": "t%d" % i} for i in range(n)]
    am = [{"role": "user", "content": "q"}, {"role": "assistant", "content": uses},
          {"role": "user", "content": results}]
    assert m.anthropic({"model": "m", "max_tokens": 5, "messages": am})[0] == 200
    am[2]["content"] = results[:4999] + [{"type": "tool_result", "tool_use_id": "other"}]
    status, _, raw = m.anthropic({"model": "m", "max_tokens": 5, "messages": am})
    assert status == 400 and "immediately after: t4999" in json.loads(raw)["error"]["message"]
    m.stop()


@test
def auth_required_and_recorded():
    m = Mock([{"content": "ok", "sticky": True}])
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                    {"x-api-key": "k"}):
        status, _, raw = m.openai(user("x"), headers=headers)
        assert status == 401, (headers, status)
        e = json.loads(raw)["error"]
        assert e["type"] == "invalid_request_error" and "Bearer" in e["message"]
    for headers, needle in (({}, "x-api-key"), ({"anthropic-version": "2023-06-01"}, "x-api-key"),
                            ({"x-api-key": "k"}, "anthropic-version")):
        status, _, raw = m.anthropic(auser("x"), headers=headers)
        assert status == 401, (headers, status)
        r = json.loads(raw)
        assert r["type"] == "error" and r["error"]["type"] == "authentication_error"
        assert needle in r["error"]["message"], r
    assert m.openai(user("x"))[0] == 200
    assert m.anthropic(auser("x"))[0] == 200
    # The auth scheme is case-insensitive (RFC 9110).
    assert m.openai(user("x"), headers={"Authorization": "bearer k2"})[0] == 200
    recs = m.records()
    assert [r["status"] for r in recs] == [401] * 7 + [200, 200, 200]
    assert recs[0]["authorization"] is None and recs[0]["x_api_key"] is None
    assert recs[1]["authorization"] == "Basic abc"
    assert recs[7]["authorization"] == "Bearer sk-test-openai-123"
    assert recs[7]["x_api_key"] is None
    assert recs[8]["x_api_key"] == "sk-ant-test-456" and recs[8]["authorization"] is None
    assert recs[8]["format"] == "anthropic" and recs[7]["format"] == "openai"
    m.stop()


# ---- records, log, control endpoints --------------------------------------

@test
def records_and_log():
    log = os.path.join(TMP, "requests.jsonl")
    with open(log, "w") as f:
        f.write("earlier line\n")  # --log appends
    m = Mock([{"content": "a", "sticky": True}], extra=["--log", log])
    before = int(time.time() * 1000)
    raw1 = ('{"model": "gpt-4o", "messages": [{"role": "user", "content": "h\u00e9llo \u2603"}],'
            ' "temperature": 0.10, "big": 12345678901234567890}').encode()
    b1 = json.loads(raw1)
    assert m.openai(raw1)[0] == 200
    assert m.request("GET", "/v1/models", headers=OPENAI_AUTH)[0] == 404
    after = int(time.time() * 1000)
    recs = m.records()
    assert len(recs) == 2
    r = recs[0]
    assert list(r) == ["n", "time_ms", "path", "format", "authorization", "x_api_key", "body",
                       "entry", "status"], list(r)
    assert r["n"] == 1 and before <= r["time_ms"] <= after
    assert r["path"] == "/v1/chat/completions" and r["entry"] == 0 and r["status"] == 200
    assert r["body"] == b1  # numbers kept exactly (0.10, 2^64-ish integers)
    _, _, raw = m.request("GET", "/_mock/requests")
    assert b'"temperature":0.10' in raw and b'"big":12345678901234567890' in raw
    assert recs[1] == dict(recs[1], n=2, path="/v1/models", format="other", entry=-1,
                           status=404, body="")
    # /_mock/ calls are not recorded.
    assert len(m.records()) == 2
    m.stop()
    lines = open(log).read().splitlines()
    assert lines[0] == "earlier line"
    assert [json.loads(x) for x in lines[1:]] == recs


@test
def control_endpoints():
    m = Mock([{"content": "first"}, {"content": "second"}])
    assert m.openai(user("x"))[0] == 200
    assert m.stats() == {"calls": 1, "served": {"0": 1, "1": 0}, "remaining": 1}
    status, _, raw = m.request("POST", "/_mock/reset")
    assert status == 200 and json.loads(raw) == {"ok": True}
    assert m.records() == []
    assert m.stats() == {"calls": 0, "served": {"0": 0, "1": 0}, "remaining": 2}
    _, _, raw = m.openai(user("x"))
    assert json.loads(raw)["choices"][0]["message"]["content"] == "first"
    assert json.loads(raw)["id"] == "chatcmpl-mock-1"
    # A bad script is refused with its position; the old one stays.
    status, _, raw = m.request("POST", "/_mock/script", '{"responses": [\n {"content": 5}]}')
    assert status == 400, raw
    msg = json.loads(raw)["error"]["message"]
    assert msg.startswith("<POST /_mock/script body>:2:14: at /responses/0/content:"), msg
    assert len(m.records()) == 1
    # A good one replaces the script and clears the records.
    status, _, raw = m.request("POST", "/_mock/script", [{"content": "new", "repeat": 2}])
    assert status == 200 and json.loads(raw) == {"entries": 1, "ok": True}
    assert m.records() == []
    _, _, raw = m.anthropic(auser("x"))
    assert json.loads(raw)["content"][0]["text"] == "new"
    assert json.loads(raw)["id"] == "msg_mock_1"
    assert m.stats() == {"calls": 1, "served": {"0": 1}, "remaining": 1}
    for method, path in (("GET", "/"), ("DELETE", "/_mock/requests"), ("GET", "/v1/messages"),
                         ("POST", "/v1/embeddings")):
        status, _, raw = m.request(method, path, b"{}" if method == "POST" else None)
        assert status == 404, (method, path, status)
        assert "no endpoint" in json.loads(raw)["error"]["message"]
    m.stop()


@test
def body_cap():
    m = Mock([{"content": "ok", "sticky": True}])
    # Announced too large: answered before the body is read.
    c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=30)
    c.putrequest("POST", "/v1/chat/completions")
    c.putheader("Authorization", "Bearer k")
    c.putheader("Content-Length", str(8 * 1024 * 1024 + 1))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413
    assert "limit of 8388608 bytes" in json.loads(r.read())["error"]["message"]
    c.close()
    # Exactly at the cap: read, and answered (400: not a valid request).
    status, _, raw = m.openai(b" " * (8 * 1024 * 1024))
    assert status == 400, status
    # Over the cap in chunks (no Content-Length): 413 as well.
    c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=30)
    chunk = b"x" * (1024 * 1024)
    c.request("POST", "/v1/messages", body=iter([chunk] * 9), headers=ANTHROPIC_AUTH,
              encode_chunked=True)
    r = c.getresponse()
    assert r.status == 413
    assert json.loads(r.read())["error"]["type"] == "request_too_large"
    c.close()
    recs = m.records()
    assert [x["status"] for x in recs] == [413, 400, 413]
    assert recs[0]["body"] is None and recs[2]["body"] is None
    m.stop()


# ---- delays, concurrency, shutdown ---------------------------------------

@test
def delays_and_shutdown():
    m = Mock([{"when": {"last_user_contains": "slow"}, "content": "late", "delay_ms": 1500,
               "sticky": True},
              {"when": {"last_user_contains": "stuck"}, "content": "never", "delay_ms": 60000},
              {"content": "fast", "sticky": True}])
    # A client with a short timeout gives up on the delayed reply.
    t0 = time.monotonic()
    try:
        m.request("POST", "/v1/chat/completions", user("slow"), OPENAI_AUTH, timeout=0.3)
        raise AssertionError("the delayed reply came before the client timeout")
    except (socket.timeout, TimeoutError, urllib.error.URLError):
        pass
    # A delayed reply holds only its own connection.
    result = {}
    th = threading.Thread(target=lambda: result.update(
        slow=m.openai(user("slow")), done=time.monotonic()))
    th.start()
    status, _, raw = m.openai(user("quick"))
    quick_done = time.monotonic()
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "fast"
    th.join(30)
    assert result["slow"][0] == 200
    assert json.loads(result["slow"][2])["choices"][0]["message"]["content"] == "late"
    assert result["done"] - t0 >= 1.5 and quick_done < result["done"]
    # SIGTERM does not wait out a pending 60 s delay.
    stuck = threading.Thread(target=lambda: result.update(stuck=_try(m, user("stuck"))))
    stuck.start()
    # The record exists as soon as the request was taken (before the delay);
    # wait for that state, not for a time.
    deadline = time.monotonic() + 30
    while not any(r["body"]["messages"][0]["content"] == "stuck" for r in m.records()):
        assert time.monotonic() < deadline, "the delayed request was never recorded"
    t1 = time.monotonic()
    m.stop()
    assert time.monotonic() - t1 < 10
    stuck.join(30)


@test
def timeout_then_retry():
    """A delayed entry is used up on arrival: the client's retry after its
    timeout gets the next entry, and both requests are recorded."""
    m = Mock([{"content": "too late", "delay_ms": 2000}, {"content": "retry answer"}])
    try:
        m.request("POST", "/v1/messages", auser("q"), ANTHROPIC_AUTH, timeout=0.3)
        raise AssertionError("the delayed reply came before the client timeout")
    except (socket.timeout, TimeoutError, urllib.error.URLError):
        pass
    status, _, raw = m.anthropic(auser("q"))
    assert status == 200 and json.loads(raw)["content"][0]["text"] == "retry answer"
    assert [(r["n"], r["entry"], r["status"]) for r in m.records()] == [(1, 0, 200), (2, 1, 200)]
    m.stop()


def _try(m, body):
    try:
        return m.openai(body)
    except Exception as e:  # the server went away mid-delay
        return e


@test
def concurrent_requests():
    m = Mock([{"content": "ok", "sticky": True}])
    errors = []

    def worker(k):
        try:
            for i in range(15):
                send = m.openai if (k + i) % 2 else m.anthropic
                body = user("w%d-%d" % (k, i)) if send == m.openai else auser("w%d-%d" % (k, i))
                status, _, raw = send(body)
                assert status == 200, raw
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    recs = m.records()
    assert sorted(r["n"] for r in recs) == list(range(1, 121))
    assert [r["n"] for r in recs] == list(range(1, 121))  # kept in order of n
    texts = sorted(r["body"]["messages"][0]["content"] for r in recs)
    assert texts == sorted("w%d-%d" % (k, i) for k in range(8) for i in range(15))
    assert m.stats()["served"] == {"0": 120}
    m.stop()


@test
def script_swap_under_load():
    """POST /_mock/script while model requests run: every request gets a
    whole reply from one script or the other (run under ASan in CI)."""
    m = Mock([{"content": "old", "sticky": True}])
    stop = threading.Event()
    bad = []

    def caller():
        while not stop.is_set():
            status, _, raw = m.openai(user("x"))
            text = json.loads(raw)["choices"][0]["message"]["content"] if status == 200 else None
            if text not in ("old", "new-a", "new-b"):
                bad.append((status, raw))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(40):
        name = "new-a" if i % 2 else "new-b"
        status, _, raw = m.request("POST", "/_mock/script", [{"content": name, "sticky": True}])
        assert status == 200 and json.loads(raw)["entries"] == 1
    stop.set()
    for t in threads:
        t.join(60)
    assert not bad, bad[:3]
    recs = m.records()
    assert [r["n"] for r in recs] == list(range(1, len(recs) + 1))
    m.stop()


@test
def readme_example_plays():
    """examples/mock-model/demo.json, the README's example, plays as the
    README says, in the Anthropic format."""
    here = os.path.dirname(os.path.abspath(__file__))
    m = Mock(open(os.path.join(here, "..", "..", "examples", "mock-model", "demo.json")).read())
    tools = [{"name": "crm__lookup_account", "input_schema": {"type": "object"}}]
    body = auser("Triage ticket T-1001", tools=tools)
    status, _, raw = m.anthropic(body)
    r = json.loads(raw)
    assert status == 200 and r["stop_reason"] == "tool_use", raw
    use = r["content"][0]
    assert use["name"] == "crm__lookup_account" and use["input"] == {"id": "ACME-7"}
    body["messages"] += [{"role": "assistant", "content": r["content"]},
                         {"role": "user", "content": [{"type": "tool_result",
                                                       "tool_use_id": use["id"],
                                                       "content": "{\"id\": \"ACME-7\"}"}]}]
    status, _, raw = m.anthropic(body)
    r = json.loads(raw)
    assert r["content"][0]["text"] == '{"severity":"high","needs_engineering":true}'
    assert r["usage"] == {"input_tokens": 900, "output_tokens": 12}
    status, headers, _ = m.anthropic(auser("next run"))
    assert status == 429 and headers["Retry-After"] == "1"
    for _ in range(2):
        status, _, raw = m.anthropic(auser("next run"))
        assert json.loads(raw)["content"][0]["text"] == "Hello from the mock."
    m.stop()


@test
def demo_script_loads():
    """The script `keel demo` compiles in (support-triage.json) is valid and
    plays its first turn."""
    here = os.path.dirname(os.path.abspath(__file__))
    demo = os.path.join(here, "..", "..", "examples", "mock-model", "support-triage.json")
    m = Mock(open(demo).read())
    body = {"model": "x", "messages": [
        {"role": "system", "content": "You are the triage agent."},
        {"role": "user", "content": "Triage this support ticket: T-1"}],
        "tools": [{"type": "function", "function": {"name": "crm__lookup_account",
                                                    "parameters": {"type": "object"}}}]}
    status, _, raw = m.openai(body)
    assert status == 200, raw
    calls = json.loads(raw)["choices"][0]["message"]["tool_calls"]
    assert calls[0]["function"]["name"] == "crm__lookup_account"
    assert m.records()[0]["entry"] == 0
    m.stop()


@test
def duplicate_keys_last_wins():
    m = Mock([{"when": {"model": "second"}, "content": "last key won"}])
    status, _, raw = m.openai(
        '{"model": "first", "model": "second", "messages": [{"role": "user", "content": "x"}]}')
    assert status == 200 and json.loads(raw)["model"] == "second", raw
    m.stop()


# ---- command line ---------------------------------------------------------

@test
def bad_scripts_exit_2():
    cases = [
        ('{"responses": [\n  {"content": "x"},\n  {"content": 3}\n]}\n',
         ":3:15: at /responses/1/content: script entry 1: 'content' must be a string"),
        ('{"responses": [\n  {"content": "x",}\n]}\n', ":2:19: the script is not valid JSON"),
        ('[{"when": {"modl": "x"}, "content": "a"}]', ":1:20: at /0/when/modl:"),
        ('{"responses": [{"status": 200}]}', "at /responses/0/status:"),
        ('{"responses": [{"when": {}}]}', "has no reply"),
        ('{"responses": [{"content": "a", "delay_ms": 60001}]}', "from 0 to 60000"),
        ('{"responses": [{"content": "a", "repeat": 2, "sticky": true}]}', "not both"),
        ('{"responses": [{"tool_calls": [{"name": "a", "arguments": {}, '
         '"arguments_text": "{}"}]}]}', "not both"),
        ('{"responses": [{"json": 1, "content": "a"}]}', "cannot be combined"),
        ('{"responses": [{"content": "a", "when": {"path": "gemini"}}]}', '"openai" or'),
        ('{"response": []}', "unknown field 'response'"),
        ('{"responses": [], "max_completion_tokens_only": "o3"}',
         ":1:49: at /max_completion_tokens_only: 'max_completion_tokens_only' must be a list"),
        ('{"responses": [], "max_completion_tokens_only": ["o3", ""]}',
         "at /max_completion_tokens_only/1: item 1 of 'max_completion_tokens_only' must be a "
         "model id (a non-empty string), not an empty string"),
        ('"hello"', "not string"),
    ]
    for text, needle in cases:
        path = write("bad.json", text)
        p = subprocess.run([BIN, "--script", path], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (text, p.returncode, p.stderr)
        assert p.stdout == ""
        assert (path + needle) in p.stderr or needle in p.stderr, (needle, p.stderr)
        assert p.stderr.startswith("keel-mock-model: " + path), p.stderr
    for args, needle in (([], "--script FILE is required"), (["--bogus"], "unknown argument"),
                         (["--script"], "needs a value"),
                         (["--script", write("ok.json", "[]"), "--listen", "nowhere"],
                          "not HOST:PORT")):
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and needle in p.stderr and "usage:" in p.stderr, (args, p)
    p = subprocess.run([BIN, "--script", os.path.join(TMP, "missing.json")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "missing.json" in p.stderr


@test
def sigint_exits_0_and_listen_flag():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    m = Mock([{"content": "x"}], extra=["--listen", "127.0.0.1:%d" % port])
    assert m.url == "http://127.0.0.1:%d" % port
    # The port is taken now: a second server says so and exits 1.
    p = subprocess.run([BIN, "--script", m.script_path, "--listen", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot listen on 127.0.0.1:%d" % port in p.stderr, p
    assert p.stdout == ""
    # A log that cannot be opened: exit 1, naming it.
    p = subprocess.run([BIN, "--script", m.script_path, "--log", TMP],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot open the log '%s'" % TMP in p.stderr, p
    m.proc.send_signal(signal.SIGINT)
    assert m.proc.wait(timeout=20) == 0
    m.err.close()


def main():
    if not os.path.exists(BIN):
        print("no binary at %s (set KEEL_BUILD_DIR)" % BIN)
        return 1
    passed = failed = 0
    only = sys.argv[1] if len(sys.argv) > 1 else None
    for t in TESTS:
        if only and only not in t.__name__:
            continue
        try:
            t()
            passed += 1
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
