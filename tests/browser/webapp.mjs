// Drives the web app (admin-ui, served at /) in a real browser: Debian's chromium (CHROMIUM,
// default /usr/bin/chromium) through playwright-core. tests/api/webapp_browser.rs starts the
// server and checks the outcome through the API; this script acts as a new company would and
// prints what it saw as one JSON object (its last line).
//
//   node webapp.mjs <base_url> <slug> <company> <admin_name> <email> <password> <screenshot_dir>
import { chromium } from 'playwright-core';
import { recordsFlow } from './records.mjs';
import { ticketsFlow } from './tickets.mjs';
import { pluginsFlow } from './plugins.mjs';

const [base, slug, company, adminName, email, password, shots] = process.argv.slice(2);
const STEP_MS = 30_000; // generous: CI runs this beside the whole test suite on two cores

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
// Script errors, console errors and CSP violations: all must stay empty.
const problems = [];
const seen = {};

function watch(page) {
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // The signed-out probe of /me answers 401, which the browser logs: that is expected.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${m.text()}`);
    }
  });
}

const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const path = (page) => { const u = new URL(page.url()); return u.pathname + u.search; };

async function chooseLanguage(page, label) {
  await page.getByTestId('lang-switch').click();
  const item = page.getByRole('menuitem', { name: label });
  await item.click();
  await item.waitFor({ state: 'hidden' });
}

/** Lets a layout change or an opening drawer finish its animation before a screenshot. */
const settle = (page) => page.waitForTimeout(400);

try {
  const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  watch(page);

  // First load with a cold cache: a client route, signed out, lands on the login page.
  const started = Date.now();
  await page.goto(`${base}/`);
  await page.getByTestId('login-submit').waitFor();
  seen.firstLoadMs = Date.now() - started;
  seen.loginPath = path(page);
  seen.transferred = await page.evaluate(() => performance.getEntriesByType('resource')
    .concat(performance.getEntriesByType('navigation'))
    .reduce((sum, e) => sum + (e.transferSize || 0), 0));
  await shot(page, 'login-zh-1366');

  // Sign-up: slug checked while typing, password rules shown.
  await page.getByRole('link', { name: '注册公司' }).click();
  await page.getByLabel('公司名称').fill(company);
  await page.getByLabel('公司代码').fill('Bad--Slug');
  await page.getByText('只能使用小写字母').waitFor();
  await page.getByLabel('公司代码').fill(slug);
  await page.getByLabel('管理员姓名').fill(adminName);
  await page.getByLabel('管理员邮箱').fill(email);
  await page.getByLabel('密码').fill(password);
  await shot(page, 'signup-zh-1366');
  await page.getByTestId('signup-submit').click();
  await page.getByTestId('company').waitFor();
  seen.afterSignup = { path: path(page), company: await page.getByTestId('company').textContent() };

  // Sign out, then open a page while signed out: log in and come back to it.
  await page.getByTestId('user-menu').click();
  await page.getByRole('menuitem', { name: '退出登录' }).click();
  await page.getByTestId('login-submit').waitFor();
  await page.goto(`${base}/somewhere/deep?tab=2`);
  await page.getByTestId('login-submit').waitFor();
  seen.loginWithNext = path(page);
  await page.getByLabel('公司代码').fill(slug);
  await page.getByLabel('邮箱').fill(email);
  await page.getByLabel('密码').fill('wrong password 123');
  await page.getByTestId('login-submit').click();
  seen.wrongPassword = await page.getByRole('alert').first().textContent();
  await page.getByLabel('密码').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByText('页面不存在').waitFor();
  seen.backTo = path(page);

  // Home from the menu; a reload keeps the session (the HttpOnly cookie).
  await page.getByRole('menuitem', { name: '工作台' }).click();
  await page.getByTestId('greeting').waitFor();
  await page.reload();
  await page.getByTestId('greeting').waitFor();
  seen.greetingZh = await page.getByTestId('greeting').textContent();
  seen.cookies = (await context.cookies()).map((c) => ({
    name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, path: c.path,
  }));
  seen.scriptSeesSession = await page.evaluate(() => document.cookie.includes('crm_session'));
  await shot(page, 'home-zh-1366');

  // Customers: the generic record list, empty first; then one customer created by the page's
  // own cookie session (with the CSRF header, as the app sends it), found by search.
  await page.getByRole('menuitem', { name: '客户' }).click();
  await page.getByText('共 0 条').waitFor();
  seen.customersEmpty = await page.getByTestId('record-count').textContent();
  seen.created = await page.evaluate(async () => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('crm_csrf='))?.slice(9) ?? '';
    const post = (headers) => fetch('/api/v1/customers', {
      method: 'POST', headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ name: '北京星辰汽车销售有限公司' }),
    }).then((r) => r.status);
    return { withoutCsrf: await post({}), withCsrf: await post({ 'x-csrf-token': csrf }) };
  });
  await page.reload();
  await page.getByText('共 1 条').waitFor();
  await page.getByRole('searchbox', { name: '搜索' }).or(page.getByLabel('搜索')).first().fill('星辰');
  await page.keyboard.press('Enter');
  await page.waitForURL(/q=/);
  await page.getByRole('cell', { name: '北京星辰汽车销售有限公司' }).waitFor();
  seen.customersFound = { path: path(page), count: await page.getByTestId('record-count').textContent() };
  await shot(page, 'customers-zh-1366');

  // The generic record screens: custom field, form, search, filter, detail, edit (records.mjs).
  await recordsFlow(page, { shot, settle, chooseLanguage }, seen);
  // Tickets, Home's work lists, approvals and notifications (tickets.mjs).
  await ticketsFlow(page, { shot, settle, chooseLanguage }, seen);
  // Settings → Plugins: upload, install through the dialog, switch off (plugins.mjs).
  await pluginsFlow(page, { shot, settle, chooseLanguage }, seen);
  await page.getByRole('menuitem', { name: '工作台' }).click();
  await page.getByTestId('greeting').waitFor();

  // zh-CN → en, at laptop and at phone width.
  await chooseLanguage(page, 'English');
  await page.getByText(`Hello, ${adminName}`).waitFor();
  seen.greetingEn = await page.getByTestId('greeting').textContent();
  seen.htmlLangEn = await page.evaluate(() => document.documentElement.lang);
  await shot(page, 'home-en-1366');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('button', { name: 'Open menu' }).waitFor();
  await settle(page);
  await shot(page, 'home-en-390');
  await page.getByRole('button', { name: 'Open menu' }).click();
  await page.getByRole('menuitem', { name: 'Home' }).waitFor();
  await settle(page);
  await shot(page, 'menu-en-390');
  await page.keyboard.press('Escape');
  await page.getByRole('menuitem', { name: 'Home' }).waitFor({ state: 'hidden' });
  await chooseLanguage(page, '中文');
  await page.getByText(`${adminName}，您好`).waitFor();
  await shot(page, 'home-zh-390');
  seen.horizontalScroll = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await context.close();

  // A phone, English: the login page.
  const phone = await browser.newContext({ locale: 'en-US', viewport: { width: 390, height: 844 } });
  const p2 = await phone.newPage();
  watch(p2);
  await p2.goto(`${base}/login`);
  await p2.getByTestId('login-submit').waitFor();
  seen.loginTitleEn = await p2.getByRole('heading').first().textContent();
  await shot(p2, 'login-en-390');
  await phone.close();
} catch (e) {
  problems.push(`step failed: ${e.message.split('\n')[0]}`);
  seen.failedAt = e.stack?.split('\n').slice(0, 3).join(' | ');
} finally {
  await browser.close();
}
console.log(JSON.stringify({ problems, ...seen }));
