import { describe, expect, it } from "vitest";
import { ApiProblem } from "../api/client";
import { installErrors, parseConfig, runError, runTrigger } from "./plugins";

describe("plugins", () => {
  it("check the config before sending it", () => {
    expect(parseConfig("")).toEqual({ ok: true, value: undefined });
    expect(parseConfig("  \n")).toEqual({ ok: true, value: undefined });
    expect(parseConfig('{"greeting": "您好"}')).toEqual({ ok: true, value: { greeting: "您好" } });
    expect(parseConfig("{greeting: 1}")).toEqual({ ok: false, problem: "json" });
    expect(parseConfig("[1, 2]")).toEqual({ ok: false, problem: "object" });
    expect(parseConfig("null")).toEqual({ ok: false, problem: "object" });
    expect(parseConfig('"text"')).toEqual({ ok: false, problem: "object" });
  });

  it("put the API's field errors under the dialog's fields", () => {
    const problem = new ApiProblem({
      type: "about:blank",
      title: "Invalid",
      status: 422,
      detail: "the install is invalid",
      code: "validation.failed",
      errors: [
        { field: "config.greeting", code: "type", message: "must be a string" },
        { field: "grants[0]", code: "not_requested", message: "not asked for" },
        { field: "limits.fuel", code: "too_high", message: "too high" },
      ],
    });
    expect(installErrors(problem)).toEqual({
      fields: [
        { name: "config", errors: ["must be a string"] },
        { name: "grants", errors: ["not asked for"] },
      ],
      summary: "the install is invalid",
    });
    expect(installErrors(new Error("offline"))).toEqual({ fields: [], summary: "offline" });
  });

  it("show what started a run and why it failed", () => {
    expect(runTrigger({ kind: "event", event: "customers.created", record_id: "x" })).toEqual({ kind: "event", what: "customers.created" });
    expect(runTrigger({ kind: "request", method: "POST", path: "echo" })).toEqual({ kind: "request", what: "POST echo" });
    expect(runTrigger({ kind: "rule", rule: "VIP 通知" })).toEqual({ kind: "rule", what: "VIP 通知" });
    expect(runTrigger(null)).toEqual({ kind: "", what: "" });
    expect(runError({ code: "plugin.trap", message: "unreachable" })).toEqual({ code: "plugin.trap", message: "unreachable" });
    expect(runError(undefined)).toBeNull();
  });
});
