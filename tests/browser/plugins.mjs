// Settings → Plugins in the browser, as webapp.mjs's signed-in zh-CN admin uses it: the probe
// package (plugins/tests/fixtures/probe.wasm) uploaded through the API from the page, installed
// from its row with the customers:read grant through the dialog, seen in the installs table,
// switched off. Screenshot plugins.png; everything seen goes into `seen`.
import { readFileSync } from 'node:fs';

const PROBE = new URL('../../plugins/tests/fixtures/probe.wasm', import.meta.url);

export async function pluginsFlow(page, { shot, settle, chooseLanguage }, seen) {
  const wasm = readFileSync(PROBE).toString('base64');
  seen.pluginUpload = await page.evaluate(async (b64) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('crm_csrf='))?.slice(9) ?? '';
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const form = new FormData();
    form.append('file', new Blob([bytes], { type: 'application/wasm' }), 'probe.wasm');
    const r = await fetch('/api/v1/plugins/packages', { method: 'POST', headers: { 'x-csrf-token': csrf }, body: form });
    return r.status;
  }, wasm);

  await page.getByRole('menuitem', { name: '设置' }).click();
  await page.getByRole('menuitem', { name: '插件' }).click();
  await page.getByText('还没有安装插件').waitFor();
  await page.getByRole('tab', { name: '插件包' }).click();
  const row = page.getByTestId('plugin-packages').getByRole('row').filter({ hasText: 'probe' });
  await row.getByTestId('package-install').click();
  const dialog = page.getByRole('dialog');
  // The dialog may still be settling (its package list refetched after the upload): click
  // until the box shows checked, waiting for each click to take before another.
  const grant = dialog.getByLabel('customers:read');
  await grant.waitFor();
  for (let attempt = 0; attempt < 5 && !(await grant.isChecked()); attempt += 1) {
    await grant.click();
    for (let i = 0; i < 10 && !(await grant.isChecked()); i += 1) await page.waitForTimeout(100);
  }
  await dialog.getByTestId('install-config').fill('{bad');
  await dialog.getByTestId('install-submit').click();
  seen.pluginConfigError = (await dialog.getByText('不是有效的 JSON').textContent())?.trim();
  await dialog.getByTestId('install-config').fill('{"greeting": "您好"}');
  await dialog.getByTestId('install-submit').click();
  await dialog.waitFor({ state: 'hidden' });

  const install = page.getByTestId('plugin-installs').getByRole('row').filter({ hasText: 'probe' });
  await install.waitFor();
  seen.pluginGrants = await install.locator('.ant-tag').allTextContents();
  const toggle = install.getByTestId('install-enabled');
  seen.pluginEnabledBefore = await toggle.getAttribute('aria-checked');
  await toggle.click();
  await page.getByText('已停用 probe').waitFor();
  await install.locator('[data-testid=install-enabled][aria-checked=false]').waitFor();
  seen.pluginEnabledAfter = await toggle.getAttribute('aria-checked');
  seen.pluginPath = new URL(page.url()).pathname;
  await page.locator('.ant-message-notice').first().waitFor({ state: 'detached' });
  await settle(page);
  await shot(page, 'plugins');

  // The same page in English, at laptop and at phone width; then back to zh-CN.
  await chooseLanguage(page, 'English');
  await page.getByTestId('plugin-installs').getByText('Enabled').first().waitFor();
  await settle(page);
  await shot(page, 'plugins-en-1366');
  await page.setViewportSize({ width: 390, height: 844 });
  await settle(page);
  await shot(page, 'plugins-en-390');
  await page.setViewportSize({ width: 1366, height: 768 });
  await chooseLanguage(page, '中文');
  await page.getByTestId('plugin-installs').getByText('启用').first().waitFor();
}
