"""An agent's session against `kb mcp` (stdio) or `kb serve` (/mcp), driven by the
official MCP Python SDK. Run by kb-cli/tests/mcp.rs; exits non-zero on the first failed
check, naming it.

    flow.py stdio --kb-bin PATH --db URL
    flow.py http --url URL --read-token T --write-token T --kb-bin PATH --db URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

READ_TOOLS = {"search", "get", "recent", "backlinks", "related", "list_kbs"}
WRITE_TOOLS = {"write", "delete", "link", "claim_task", "update_task_status"}
ADMIN_TOOLS = {"create_scratch_kb"}


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def payload(result) -> dict:
    check(not result.is_error, f"tool failed: {text(result)}")
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(text(result))


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def call(client: Client, tool: str, args: dict) -> dict:
    return payload(await client.call_tool(tool, args))


async def tool_error(client: Client, tool: str, args: dict, why: str) -> str:
    result = await client.call_tool(tool, args)
    check(result.is_error is True, f"{why}: expected a tool error, got {text(result)[:300]}")
    msg = text(result)
    check(len(msg) > 0, f"{why}: the tool error has no message")
    for leak in ("SQLSTATE", "sqlite", "postgres://", "panicked", "syntax error at"):
        check(leak.lower() not in msg.lower(), f"{why}: the error leaks {leak!r}: {msg}")
    return msg


def stdio_client(args, extra: list[str] | None = None) -> Client:
    env = {k: v for k, v in os.environ.items() if k.startswith("KB_")}
    params = StdioServerParameters(
        command=args.kb_bin, args=["--db", args.db, "mcp", *(extra or [])], env=env
    )
    return Client(params, read_timeout_seconds=60)


def http_client(url: str, token: str) -> Client:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60)


def kb_cli(args, *cli: str) -> str:
    out = subprocess.run(
        [args.kb_bin, "--db", args.db, *cli], capture_output=True, text=True, timeout=120
    )
    check(out.returncode == 0, f"kb {' '.join(cli)} failed: {out.stderr}")
    return out.stdout


async def wait_for_hit(client: Client, query: str, mode: str, want: str, kb: str | None) -> dict:
    """Semantic legs see an entry once the background worker has embedded it."""
    deadline = time.monotonic() + 60
    while True:
        args = {"query": query, "mode": mode}
        if kb:
            args["kb"] = kb
        res = await call(client, "search", args)
        ids = [h["id"] for h in res["hits"]]
        if want in ids:
            return res
        check(time.monotonic() < deadline, f"{mode} search for {query!r} never found {want}: {ids}")
        await asyncio.sleep(0.5)


async def check_tools(client: Client, expected: set[str]) -> None:
    tools = (await client.list_tools()).tools
    names = {t.name for t in tools}
    check(names == expected, f"tools {sorted(names)} != {sorted(expected)}")
    for t in tools:
        check(t.description and len(t.description) > 20, f"{t.name} has no useful description")
        schema = t.input_schema
        check(schema.get("type") == "object", f"{t.name}: input schema is not an object")
    by_name = {t.name: t for t in tools}
    search = by_name["search"].input_schema
    check("query" in search.get("required", []), "search must require query")
    for prop in ("mode", "kb", "type", "tags", "limit"):
        check(prop in search["properties"], f"search lacks {prop}")
    if "write" in by_name:
        props = by_name["write"].input_schema["properties"]
        for prop in ("title", "body", "tags", "type", "metadata", "importance", "ttl_seconds"):
            check(prop in props, f"write lacks {prop}")


async def memories(client: Client, kb: str) -> list[str]:
    notes = [
        ("Raft consensus", "Leader election and log replication keep replicas consistent.", ["distributed"]),
        ("Sourdough starter", "Feed the starter flour and water daily; it smells of yoghurt.", ["cooking"]),
        ("Write-ahead log", "Changes are appended to the log before the pages are written.", ["storage"]),
    ]
    ids = []
    for title, body, tags in notes:
        w = await call(client, "write", {"kb": kb, "title": title, "body": body, "tags": tags, "importance": 2})
        check(w["created"] is True, f"write of {title} did not create")
        ids.append(w["id"])
    return ids


async def malformed(client: Client, kb: str) -> None:
    await tool_error(client, "search", {"query": 123}, "a query that is a number")
    await tool_error(client, "search", {}, "search without a query")
    await tool_error(client, "search", {"query": "x", "limit": "ten"}, "a limit that is text")
    await tool_error(client, "search", {"query": "x", "bogus": 1}, "an unknown argument")
    msg = await tool_error(client, "search", {"query": '"unclosed phrase', "mode": "keyword", "kb": kb}, "bad query syntax")
    check("quote" in msg or "phrase" in msg or "query" in msg, f"the syntax error does not say what is wrong: {msg}")
    await tool_error(client, "search", {"query": "x" * 5000}, "an oversized query")
    await tool_error(client, "write", {"kb": kb, "title": "t", "tags": "notalist"}, "tags that are not a list")
    await tool_error(client, "write", {"kb": kb, "title": "big", "body": "x" * (9 * 1024 * 1024)}, "an oversized body")
    await tool_error(client, "write", {"kb": kb, "id": "", "title": "t"}, "an empty id")
    await tool_error(client, "get", {"kb": kb}, "get without ids")
    await tool_error(client, "get", {"kb": "no-such-kb", "ids": ["a"]}, "a missing KB")
    await tool_error(client, "related", {"kb": kb, "id": "x", "depth": 9}, "a depth out of range")
    await tool_error(client, "no_such_tool", {}, "an unknown tool")
    # The session goes on.
    res = await call(client, "search", {"query": "raft", "mode": "keyword", "kb": kb})
    check(len(res["hits"]) >= 1, "search after the errors found nothing")


async def claims(clients: list[Client], kb: str, task: str) -> str:
    results = await asyncio.gather(
        *(call(c, "claim_task", {"kb": kb, "id": task, "assignee": f"agent-{i}"}) for i, c in enumerate(clients))
    )
    winners = [r for r in results if r["won"]]
    check(len(winners) == 1, f"{len(winners)} sessions won the claim: {results}")
    winner = winners[0]["assignee"]
    for r in results:
        if not r["won"]:
            check(r["holder"] == winner, f"the loser was told the holder is {r['holder']}, not {winner}")
            check(r["status"] == "in_progress", f"the loser sees status {r['status']}")
    return winner


async def stdio_flow(args) -> None:
    kb = "notes"
    async with stdio_client(args) as client:
        await check_tools(client, READ_TOOLS | WRITE_TOOLS | ADMIN_TOOLS)
        ids = await memories(client, kb)

        res = await call(client, "search", {"query": "raft replication", "mode": "keyword"})
        check(res["hits"] and res["hits"][0]["id"] == ids[0], f"keyword search: {res['hits']}")
        check(all(k in res["hits"][0] for k in ("title", "score", "snippet")), "a hit lacks title/score/snippet")
        await wait_for_hit(client, "leader election replicas", "semantic", ids[0], kb)
        await wait_for_hit(client, "flour water starter", "hybrid", ids[1], kb)

        got = await call(client, "get", {"kb": kb, "ids": [ids[2], "missing-one"]})
        check(got["entries"][0]["body"].startswith("Changes are appended"), "get did not return the body")
        check(got["missing"] == ["missing-one"], f"missing ids: {got['missing']}")

        recent = await call(client, "recent", {"kb": kb, "limit": 3})
        check([e["id"] for e in recent["entries"]] == list(reversed(ids)), f"recent order: {recent}")

        uri = f"kb://{kb}/{ids[2]}"
        res = await client.read_resource(uri)
        body = res.contents[0].text
        check(body.startswith("---\n") and "title: Write-ahead log" in body, f"resource text: {body[:200]}")
        check("Changes are appended" in body, "the resource lacks the body")
        templates = (await client.list_resource_templates()).resource_templates
        check(any(t.uri_template.startswith("kb://{kb}/") for t in templates), "no entry resource template")
        listed = (await client.list_resources()).resources
        check(any(r.uri == "kb://kbs" for r in listed), "the KB list is not a resource")
        check(any(r.uri == uri for r in listed), "entries are not listed as resources")

        upd = await call(client, "write", {"kb": kb, "id": ids[2], "tags": ["storage", "durability"]})
        check(upd["created"] is False, "an update created")
        again = (await call(client, "get", {"kb": kb, "ids": [ids[2]]}))["entries"][0]
        check(again["title"] == "Write-ahead log" and "durability" in again["tags"], "update lost fields")

        link = await call(client, "link", {"kb": kb, "from": ids[0], "to": ids[2], "relation": "uses"})
        check(link["added"] and link["target_exists"], f"link: {link}")
        bl = await call(client, "backlinks", {"kb": kb, "id": ids[2]})
        check([b["source"]["id"] for b in bl["backlinks"]] == [ids[0]], f"backlinks: {bl}")
        rel = await call(client, "related", {"kb": kb, "id": ids[2]})
        check(any(n["key"]["id"] == ids[0] for n in rel["graph"]["nodes"]), "related lacks the linked entry")

        # An entry synced from a file is the file's: changing it here would be undone.
        msg = await tool_error(client, "write", {"kb": kb, "id": "handbook", "title": "Edited"}, "editing a file-backed entry")
        check("handbook.md" in msg, f"the refusal does not name the file: {msg}")
        await tool_error(client, "delete", {"kb": kb, "id": "handbook"}, "deleting a file-backed entry")
        hb = await call(client, "get", {"kb": kb, "ids": ["handbook"]})
        check(hb["entries"][0]["title"] == "Team handbook", "a file-backed entry was changed")

        task = (await call(client, "write", {"kb": kb, "id": "task-1", "title": "Compact the log", "type": "task", "status": "open"}))["id"]
        await malformed(client, kb)

        fading = await call(client, "write", {"kb": kb, "title": "Fading thought", "body": "ephemeral kestrel", "ttl_seconds": 1})
        check(fading["expires_at"] is not None, f"no expiry: {fading}")
        res = await call(client, "search", {"query": "kestrel", "mode": "keyword", "kb": kb})
        check([h["id"] for h in res["hits"]] == [fading["id"]], "the fading memory is not found while live")
        scratch = await call(client, "create_scratch_kb", {"ttl_seconds": 1})
        await call(client, "write", {"kb": scratch["kb"], "title": "temp", "body": "scratch thoughts"})
        listed = await call(client, "list_kbs", {})
        check(scratch["kb"] in [k["kb"] for k in listed["kbs"]], "the scratch KB is not listed")

        # Two more agent sessions race for the task: exactly one wins.
        async with stdio_client(args) as a, stdio_client(args) as b:
            winner = await claims([a, b], kb, task)
        done = await call(client, "update_task_status", {"kb": kb, "id": task, "assignee": winner, "status": "done"})
        check(done["status"] == "done", f"status update: {done}")
        await tool_error(client, "update_task_status", {"kb": kb, "id": task, "assignee": "intruder", "status": "open"}, "a non-holder updating")

        await asyncio.sleep(1.5)
        # Past its TTL the memory is gone from every tool, before any GC.
        res = await call(client, "search", {"query": "kestrel", "mode": "keyword", "kb": kb})
        check(res["hits"] == [], f"an expired memory was found: {res['hits']}")
        got = await call(client, "get", {"kb": kb, "ids": [fading["id"]]})
        check(got["missing"] == [fading["id"]], "an expired memory was readable")
        out = kb_cli(args, "gc")
        check("1 expired entries" in out, f"kb gc did not remove the expired memory: {out}")
        check(scratch["kb"] in out, f"kb gc did not report the scratch KB: {out}")
        listed = await call(client, "list_kbs", {})
        check(scratch["kb"] not in [k["kb"] for k in listed["kbs"]], "the scratch KB survived gc")

        deleted = await call(client, "delete", {"kb": kb, "id": ids[1]})
        check(deleted["deleted"] is True, "delete")

    async with stdio_client(args, ["--read-only"]) as ro:
        await check_tools(ro, READ_TOOLS)
        await tool_error(ro, "write", {"kb": kb, "title": "nope"}, "a write in read-only mode")
        res = await call(ro, "search", {"query": "raft", "mode": "keyword"})
        check(len(res["hits"]) == 1, "read-only search")


async def http_flow(args) -> None:
    url = args.url
    async with http_client(url, args.write_token) as w:
        await check_tools(w, READ_TOOLS | WRITE_TOOLS)
        ids = await memories(w, "notes")
        res = await call(w, "search", {"query": "raft replication", "mode": "keyword"})
        check(res["hits"][0]["id"] == ids[0], f"keyword search over HTTP: {res['hits']}")
        await wait_for_hit(w, "leader election replicas", "semantic", ids[0], "notes")
        await wait_for_hit(w, "flour water starter", "hybrid", ids[1], None)
        # The other KB does not exist for this token: not in lists, searches, reads.
        kbs = [k["kb"] for k in (await call(w, "list_kbs", {}))["kbs"]]
        check(kbs == ["notes"], f"a scoped token sees {kbs}")
        res = await call(w, "search", {"query": "secret", "mode": "keyword"})
        check(res["hits"] == [], f"a scoped token found {res['hits']}")
        await tool_error(w, "get", {"kb": "private", "ids": ["secret-plan"]}, "reading another KB")
        await tool_error(w, "write", {"kb": "private", "title": "x"}, "writing another KB")
        try:
            await w.read_resource("kb://private/secret-plan")
            check(False, "another KB's entry was readable as a resource")
        except Exception as e:  # the SDK raises the server's resource-not-found error
            check("secret" not in str(e).lower() or "no resource" in str(e).lower(), f"resource error: {e}")
        listed = (await w.list_resources()).resources
        check(not any(r.uri.startswith("kb://private/") for r in listed), "another KB's entries are listed")
        task = (await call(w, "write", {"kb": "notes", "id": "task-h", "title": "Rotate keys", "type": "task", "status": "open"}))["id"]
        async with http_client(url, args.write_token) as a, http_client(url, args.write_token) as b:
            await claims([a, b], "notes", task)
        await malformed(w, "notes")

    async with http_client(url, args.read_token) as r:
        await check_tools(r, READ_TOOLS)
        await tool_error(r, "write", {"kb": "notes", "title": "nope"}, "a write with a read token")
        res = await call(r, "search", {"query": "raft", "mode": "keyword", "kb": "notes"})
        check(len(res["hits"]) == 1, "search with a read token")

    # No token: refused before MCP starts.
    try:
        async with Client(url) as anon:
            await anon.list_tools()
        check(False, "an anonymous client was served")
    except AssertionError:
        raise
    except BaseException:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("transport", choices=["stdio", "http"])
    p.add_argument("--kb-bin", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--url")
    p.add_argument("--read-token")
    p.add_argument("--write-token")
    args = p.parse_args()
    try:
        asyncio.run(stdio_flow(args) if args.transport == "stdio" else http_flow(args))
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
