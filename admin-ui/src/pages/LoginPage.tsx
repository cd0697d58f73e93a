// Login: tenant + e-mail + password, then the MFA code when the account has MFA. Returns to
// the page the user came from (`?next=`).
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { Alert, Button, Form, Input } from "antd";
import { useTranslation } from "react-i18next";
import { api, unwrap, WITH_COOKIE } from "../api/client";
import { formErrors } from "../forms";
import { safeNext } from "../session/next";
import { useSession } from "../session/session";
import { AuthCard } from "./AuthCard";

interface Credentials {
  tenant: string;
  email: string;
  password: string;
}

export default function LoginPage() {
  const { t } = useTranslation();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const { signedIn } = useSession();
  const [form] = Form.useForm<Credentials>();
  const [mfaForm] = Form.useForm<{ code: string }>();
  const [mfaToken, setMfaToken] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = safeNext(params.get("next"));

  const finish = async (token: string) => {
    await signedIn(token);
    navigate(next, { replace: true });
  };

  const login = async (values: Credentials) => {
    setBusy(true);
    setProblem(null);
    try {
      const answer = unwrap(await api.POST("/auth/login", { body: values, headers: WITH_COOKIE }));
      if (answer.mfa_required && answer.mfa_token) setMfaToken(answer.mfa_token);
      else if (answer.token) await finish(answer.token);
    } catch (e) {
      const errors = formErrors(e, ["tenant", "email", "password"] as const);
      form.setFields(errors.fields);
      setProblem(errors.summary);
    } finally {
      setBusy(false);
    }
  };

  const verify = async ({ code }: { code: string }) => {
    if (!mfaToken) return;
    setBusy(true);
    setProblem(null);
    try {
      const answer = unwrap(
        await api.POST("/auth/login/mfa", { body: { mfa_token: mfaToken, code }, headers: WITH_COOKIE }),
      );
      if (answer.token) await finish(answer.token);
    } catch (e) {
      const errors = formErrors(e, ["code"] as const);
      mfaForm.setFields(errors.fields);
      setProblem(errors.summary);
    } finally {
      setBusy(false);
    }
  };

  return (
    <AuthCard title={mfaToken ? t("login.mfaTitle") : t("login.title")}>
      {problem && <Alert type="error" showIcon message={problem} style={{ marginBottom: 16 }} role="alert" />}
      {mfaToken ? (
        <Form form={mfaForm} layout="vertical" onFinish={verify} requiredMark={false}>
          <Form.Item
            name="code"
            label={t("login.mfaCode")}
            extra={t("login.mfaHelp")}
            rules={[{ required: true, message: t("login.mfaCodeRequired") }]}
          >
            <Input autoComplete="one-time-code" inputMode="numeric" autoFocus />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={busy}>
            {t("login.verify")}
          </Button>
          <Button type="link" block onClick={() => setMfaToken(null)}>
            {t("login.back")}
          </Button>
        </Form>
      ) : (
        <Form
          form={form}
          layout="vertical"
          onFinish={login}
          requiredMark={false}
          initialValues={{ tenant: params.get("tenant") ?? "" }}
        >
          <Form.Item
            name="tenant"
            label={t("login.tenant")}
            extra={t("login.tenantHelp")}
            rules={[{ required: true, message: t("login.tenantRequired") }]}
          >
            <Input autoComplete="organization" autoCapitalize="none" />
          </Form.Item>
          <Form.Item
            name="email"
            label={t("login.email")}
            rules={[{ required: true, type: "email", message: t("login.emailRequired") }]}
          >
            <Input autoComplete="username" type="email" />
          </Form.Item>
          <Form.Item
            name="password"
            label={t("login.password")}
            rules={[{ required: true, message: t("login.passwordRequired") }]}
          >
            <Input.Password autoComplete="current-password" />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={busy} data-testid="login-submit">
            {t("login.submit")}
          </Button>
          <div className="crm-auth-alt">
            {t("login.noAccount")} <Link to="/signup">{t("login.signUp")}</Link>
          </div>
        </Form>
      )}
    </AuthCard>
  );
}
