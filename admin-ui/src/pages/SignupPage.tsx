// A company signs itself up: company name, its short name (slug, checked while typing against
// the server's rules), the administrator, and a password with its rules shown as they are met.
import { useState } from "react";
import { Link, useNavigate } from "react-router-dom";
import { Alert, Button, Form, Input, Typography } from "antd";
import { CheckCircleFilled, CloseCircleOutlined } from "@ant-design/icons";
import { useTranslation } from "react-i18next";
import { api, unwrap, WITH_COOKIE } from "../api/client";
import { formErrors, PASSWORD_MIN, slugProblem, suggestSlug } from "../forms";
import { useSession } from "../session/session";
import { AuthCard } from "./AuthCard";

interface SignupValues {
  tenant_name: string;
  tenant_slug: string;
  admin_name: string;
  admin_email: string;
  admin_password: string;
}

const FIELDS = ["tenant_name", "tenant_slug", "admin_name", "admin_email", "admin_password"] as const;

export default function SignupPage() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const { signedIn } = useSession();
  const [form] = Form.useForm<SignupValues>();
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [slugTouched, setSlugTouched] = useState(false);
  const password = Form.useWatch("admin_password", form) ?? "";

  const submit = async (values: SignupValues) => {
    setBusy(true);
    setProblem(null);
    try {
      const answer = unwrap(await api.POST("/signup", { body: values, headers: WITH_COOKIE }));
      await signedIn(answer.token);
      navigate("/", { replace: true });
    } catch (e) {
      const errors = formErrors(e, FIELDS);
      form.setFields(errors.fields);
      setProblem(errors.summary);
    } finally {
      setBusy(false);
    }
  };

  const longEnough = password.length >= PASSWORD_MIN;
  return (
    <AuthCard title={t("signup.title")}>
      {problem && <Alert type="error" showIcon message={problem} style={{ marginBottom: 16 }} role="alert" />}
      <Form
        form={form}
        layout="vertical"
        onFinish={submit}
        onValuesChange={(changed: Partial<SignupValues>) => {
          if (changed.tenant_name !== undefined && !slugTouched) {
            form.setFieldValue("tenant_slug", suggestSlug(changed.tenant_name));
          }
        }}
      >
        <Form.Item
          name="tenant_name"
          label={t("signup.companyName")}
          rules={[{ required: true, message: t("signup.companyNameRequired") }]}
        >
          <Input autoComplete="organization" />
        </Form.Item>
        <Form.Item
          name="tenant_slug"
          label={t("signup.slug")}
          extra={t("signup.slugHelp")}
          validateTrigger="onChange"
          validateDebounce={400}
          hasFeedback
          rules={[
            {
              validator: async (_, value: string | undefined) => {
                const slug = value ?? "";
                const issue = slugProblem(slug);
                if (issue) throw new Error(t(`signup.slugRule.${issue}`));
                // Then the server: reserved names and codes already taken.
                const { data } = await api.GET("/signup/slug-availability", {
                  params: { query: { slug } },
                });
                if (data && !data.available) {
                  throw new Error(
                    t(data.reason === "taken" ? "signup.slugTaken" : "signup.slugReserved"),
                  );
                }
              },
            },
          ]}
        >
          <Input
            autoCapitalize="none"
            spellCheck={false}
            onChange={() => setSlugTouched(true)}
            addonBefore={t("signup.slugPrefix")}
          />
        </Form.Item>
        <Form.Item
          name="admin_name"
          label={t("signup.adminName")}
          rules={[{ required: true, message: t("signup.adminNameRequired") }]}
        >
          <Input autoComplete="name" />
        </Form.Item>
        <Form.Item
          name="admin_email"
          label={t("signup.adminEmail")}
          rules={[{ required: true, type: "email", message: t("signup.adminEmailRequired") }]}
        >
          <Input type="email" autoComplete="email" />
        </Form.Item>
        <Form.Item
          name="admin_password"
          label={t("signup.password")}
          rules={[{ required: true, min: PASSWORD_MIN, message: t("signup.passwordRule.length", { min: PASSWORD_MIN }) }]}
          extra={
            <ul className="crm-rules" aria-live="polite">
              <li>
                {longEnough ? <CheckCircleFilled className="ok" /> : <CloseCircleOutlined />}{" "}
                <Typography.Text type={longEnough ? "success" : "secondary"}>
                  {t("signup.passwordRule.length", { min: PASSWORD_MIN })}
                </Typography.Text>
              </li>
              <li>
                <Typography.Text type="secondary">{t("signup.passwordRule.common")}</Typography.Text>
              </li>
            </ul>
          }
        >
          <Input.Password autoComplete="new-password" />
        </Form.Item>
        <Button type="primary" htmlType="submit" block loading={busy} data-testid="signup-submit">
          {t("signup.submit")}
        </Button>
        <div className="crm-auth-alt">
          {t("signup.haveAccount")} <Link to="/login">{t("signup.logIn")}</Link>
        </div>
      </Form>
    </AuthCard>
  );
}
