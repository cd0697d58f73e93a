import { describe, expect, it } from "vitest";
import { csrfFromCookie, ApiProblem } from "./api/client";
import { formErrors, slugProblem, suggestSlug } from "./forms";
import { pickLocale } from "./locale";
import { cellText, fieldLabel, listColumns, listQueryString, type FieldMeta, type ObjectMeta } from "./records/list";
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

describe("the generic record list", () => {
  const field = (key: string, type: string, position: number, extra: Partial<FieldMeta> = {}): FieldMeta => ({
    key, type, position, builtin: true, label: key, labels: { "zh-CN": `字段${key}` }, required: false, unique: false,
    indexed: false, options: [], option_labels: {}, searchable: false, sensitive: false, encrypted: false,
    portal_editable: false, ...extra,
  });
  const object: ObjectMeta = {
    key: "customers", builtin: true, name: "customer", name_plural: "customers", labels: { "zh-CN": "客户" },
    fields: [field("notes", "long_text", 0), field("level", "select", 2), field("name", "text", 1), field("vip", "boolean", 3)],
  };
  it("shows the fields by position, leaving out what a cell cannot show", () => {
    expect(listColumns(object).map((f) => f.key)).toEqual(["name", "level", "vip"]);
    expect(listColumns(object, 1).map((f) => f.key)).toEqual(["name"]);
  });
  it("labels in the user's language, falling back on the app's, then the field's own", () => {
    expect(fieldLabel(object.fields[1]!, "zh-CN")).toBe("字段level");
    expect(fieldLabel(object.fields[1]!, "en")).toBe("level");
    expect(fieldLabel(object.fields[1]!, "en", () => "Level")).toBe("Level");
    expect(fieldLabel({ ...object.fields[1]!, builtin: false }, "en", () => "Level")).toBe("level");
  });
  it("shows select options by their label", () => {
    const kind = field("kind", "select", 0, { option_labels: { company: { "zh-CN": "企业" } } });
    expect(cellText("company", kind, ["是", "否"], "YYYY", "zh-CN")).toBe("企业");
    expect(cellText("company", kind, ["Yes", "No"], "YYYY", "en")).toBe("company");
  });
  it("reads values as text", () => {
    const f = object.fields[3]!;
    const yn: [string, string] = ["是", "否"];
    expect(cellText(true, f, yn, "YYYY")).toBe("是");
    expect(cellText(null, f, yn, "YYYY")).toBe("");
    expect(cellText(["a", "b"], object.fields[1]!, yn, "YYYY")).toBe("a, b");
    expect(cellText({ id: "x", name: "张伟" }, f, yn, "YYYY")).toBe("张伟");
    expect(cellText("2026-12-02T08:00:00Z", field("at", "datetime", 0), yn, "YYYY-MM-DD")).toBe("2026-12-02");
  });
  it("asks for pages with the search and the cursor", () => {
    expect(listQueryString({ q: " 张 ", cursor: "c1", limit: 50 })).toBe("q=%E5%BC%A0&cursor=c1&limit=50");
    expect(listQueryString({ q: "  " })).toBe("");
  });
});
