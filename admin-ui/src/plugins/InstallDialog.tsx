// Installing an uploaded package: the permissions it asks for as checkboxes (the grants), the
// hosts it may reach, and its config as JSON, checked here before it is sent; the API's 422
// messages go under the fields they name.
import { useState } from "react";
import { Alert, Checkbox, Form, Input, Modal, Select, Typography } from "antd";
import { useQueryClient } from "@tanstack/react-query";
import { useTranslation } from "react-i18next";
import { api, unwrap } from "../api/client";
import { installErrors, parseConfig, type Package } from "./plugins";

interface Values {
  grants: string[];
  allowed_hosts: string[];
  config: string;
}

export function InstallDialog({ pkg, onClose, onInstalled }: { pkg: Package | null; onClose: () => void; onInstalled: () => void }) {
  const { t } = useTranslation();
  const queries = useQueryClient();
  const [form] = Form.useForm<Values>();
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (values: Values) => {
    if (!pkg) return;
    const config = parseConfig(values.config ?? "");
    if (!config.ok) return;
    setBusy(true);
    setProblem(null);
    try {
      const body = { package_id: pkg.id, grants: values.grants ?? [], allowed_hosts: values.allowed_hosts ?? [], secrets: {}, config: config.value };
      unwrap(await api.POST("/plugins/installs", { body }));
      await queries.invalidateQueries({ queryKey: ["plugins", "installs"] });
      form.resetFields();
      onInstalled();
    } catch (e) {
      const errors = installErrors(e);
      form.setFields(errors.fields);
      setProblem(errors.summary);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal
      open={pkg !== null}
      title={t("plugins.install.title", { name: pkg?.name ?? "", version: pkg?.version ?? "" })}
      okText={t("plugins.install.submit")}
      cancelText={t("common.cancel")}
      okButtonProps={{ "data-testid": "install-submit" } as never}
      confirmLoading={busy}
      onOk={() => form.submit()}
      onCancel={() => {
        setProblem(null);
        onClose();
      }}
      destroyOnHidden
    >
      {pkg?.manifest.description && <Typography.Paragraph type="secondary">{pkg.manifest.description}</Typography.Paragraph>}
      {problem && <Alert type="error" showIcon message={problem} style={{ marginBottom: 16 }} role="alert" />}
      <Form<Values> form={form} layout="vertical" onFinish={submit} preserve={false} initialValues={{ grants: [], allowed_hosts: [], config: "" }}>
        <Form.Item name="grants" label={t("plugins.install.grants")} extra={t("plugins.install.grantsHelp")}>
          <Checkbox.Group options={(pkg?.manifest.permissions ?? []).map((p) => ({ label: p, value: p }))} data-testid="install-grants" />
        </Form.Item>
        <Form.Item name="allowed_hosts" label={t("plugins.install.hosts")} extra={t("plugins.install.hostsHelp")}>
          <Select mode="tags" open={false} suffixIcon={null} tokenSeparators={[",", " "]} aria-label={t("plugins.install.hosts")} />
        </Form.Item>
        <Form.Item
          name="config"
          label={t("plugins.install.config")}
          extra={t("plugins.install.configHelp")}
          rules={[
            {
              validator: async (_, value: string | undefined) => {
                const parsed = parseConfig(value ?? "");
                if (!parsed.ok) throw new Error(t(`plugins.install.configProblem.${parsed.problem}`));
              },
            },
          ]}
        >
          <Input.TextArea autoSize={{ minRows: 3, maxRows: 10 }} className="crm-logs" placeholder='{"greeting": "…"}' data-testid="install-config" />
        </Form.Item>
      </Form>
    </Modal>
  );
}
