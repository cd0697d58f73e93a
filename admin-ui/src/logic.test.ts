import { describe, expect, it } from "vitest";
import { csrfFromCookie, ApiProblem } from "./api/client";
import { formErrors, slugProblem, suggestSlug } from "./forms";
import { pickLocale } from "./locale";
import { loginPath, safeNext } from "./session/next";

describe("the page after login", () => {
  it("is a path of this app", () => {
    expect(safeNext("/customers?owner=me#top")).toBe("/customers?owner=me#top");
    expect(safeNext(null)).toBe("/");
    expect(safeNext("")).toBe("/");
  });
  it("is never another site or the login page itself", () => {
    for (const bad of ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/login?next=/x", "/signup"]) {
      expect(safeNext(bad), bad).toBe("/");
    }
  });
  it("is carried by the login address", () => {
    expect(loginPath("/customers?q=张")).toBe(`/login?next=${encodeURIComponent("/customers?q=张")}`);
    expect(loginPath("/")).toBe("/login");
  });
});

describe("the language", () => {
  it("is the user's choice first", () => {
    expect(pickLocale("en", ["zh-CN"])).toBe("en");
    expect(pickLocale("zh-CN", ["en-US"])).toBe("zh-CN");
  });
  it("follows the browser otherwise: Chinese for any zh, English for the rest", () => {
    expect(pickLocale(null, ["zh-TW", "en"])).toBe("zh-CN");
    expect(pickLocale(undefined, ["zh"])).toBe("zh-CN");
    expect(pickLocale("fr", ["en-GB", "zh-CN"])).toBe("en");
    expect(pickLocale(null, ["de-DE"])).toBe("en");
    expect(pickLocale(null, [])).toBe("zh-CN");
  });
});

describe("the CSRF cookie", () => {
  it("is read from document.cookie", () => {
    expect(csrfFromCookie("a=1; crm_csrf=abc%3D; b=2")).toBe("abc=");
    expect(csrfFromCookie("crm_csrfx=1")).toBeNull();
    expect(csrfFromCookie("")).toBeNull();
  });
});

describe("tenant slugs", () => {
  it("follow the server's rules", () => {
    expect(slugProblem("acme-trading")).toBeNull();
    expect(slugProblem("ab")).toBe("length");
    expect(slugProblem("a".repeat(41))).toBe("length");
    expect(slugProblem("Acme")).toBe("chars");
    expect(slugProblem("北京公司")).toBe("chars");
    expect(slugProblem("-acme")).toBe("dash");
    expect(slugProblem("acme--x")).toBe("dash");
  });
  it("are suggested from Latin company names", () => {
    expect(suggestSlug("Acme Trading Co., Ltd.")).toBe("acme-trading-co-ltd");
    expect(suggestSlug("上海汽车")).toBe("");
  });
});

describe("form errors", () => {
  const problem = new ApiProblem({
    type: "about:blank",
    title: "Unprocessable",
    status: 422,
    detail: "2 fields are invalid",
    code: "validation.failed",
    errors: [
      { field: "admin_email", code: "invalid_email", message: "not an email" },
      { field: "elsewhere", code: "x", message: "not on this form" },
    ],
  });
  it("go under the fields the form has, the detail above the form", () => {
    const out = formErrors(problem, ["admin_email", "tenant_slug"] as const);
    expect(out.fields).toEqual([{ name: "admin_email", errors: ["not an email"] }]);
    expect(out.summary).toBe("2 fields are invalid");
  });
  it("keep a network failure's message", () => {
    expect(formErrors(new TypeError("Failed to fetch"), []).summary).toBe("Failed to fetch");
  });
});
