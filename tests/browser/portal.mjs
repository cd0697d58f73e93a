// Drives the customer portal pages in a real browser: Debian's chromium (CHROMIUM, default
// /usr/bin/chromium) through playwright-core, never a downloaded browser. tests/api/
// portal_browser.rs runs it against a live server and checks the results through the staff
// API; this script only acts as a customer would and prints what it saw as one JSON object.
//
//   node portal.mjs portal <login_url> <tenant> <email> <subject> <description> <reply>
//   node portal.mjs rate   <login_url> <ticket_number> <rating> <comment>
//   node portal.mjs survey <survey_url> <rating> <comment>
import { chromium } from 'playwright-core';

const [mode, ...args] = process.argv.slice(2);
const STEP_MS = 30_000; // generous: CI runs this beside the whole test suite on two cores

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const problems = [];
// SCREENSHOTS=<dir> keeps a picture of each step, to look at the pages as a person would.
const shot = (page, name) => process.env.SCREENSHOTS
  && page.screenshot({ path: `${process.env.SCREENSHOTS}/${mode}-${name}.png`, fullPage: true }); // script errors, console errors and CSP reports: all must stay empty

async function newPage() {
  const context = await browser.newContext({ locale: 'zh-CN' });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // A refused API call (the used link's 401) is logged by the browser: that is expected.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${m.text()}`);
    }
  });
  return page;
}

/// The page's own script state a test cares about.
const probe = (page) => page.evaluate(() => ({
  xss: typeof window.__xss,
  images: document.images.length,
  session: sessionStorage.getItem('tc-portal-session'),
}));

/// Signs in through a mailed link and waits for the ticket list.
async function signIn(page, loginUrl) {
  await page.goto(loginUrl);
  await page.locator('#v-list').waitFor({ state: 'visible' });
  await page.locator('#tickets[data-loaded=true]').waitFor({ state: 'attached' });
  return page.url();
}

async function openTicket(page, number) {
  await page.locator('#tickets a', { hasText: number }).click();
  await page.locator('#v-detail[data-loaded=true]').waitFor({ state: 'attached' });
}

async function portal([loginUrl, tenant, email, subject, description, reply]) {
  const page = await newPage();
  const urlAfterLogin = await signIn(page, loginUrl);
  const afterLogin = await probe(page);
  const who = await page.locator('#who').textContent();
  await shot(page, 'list-empty');

  // A new ticket through the form; the page opens it once created.
  await page.locator('#b-new').click();
  await page.getByLabel('标题').fill(subject);
  await page.getByLabel('问题描述').fill(description);
  await page.getByLabel('类型').selectOption('complaint');
  await page.getByLabel('优先级').selectOption('high');
  await shot(page, 'new');
  await page.locator('#f-new button[type=submit]').click();
  await page.locator('#v-detail[data-loaded=true]').waitFor({ state: 'attached' });
  const title = await page.locator('#d-title').textContent();
  const number = title.split(' ')[0];
  const createdNotice = await page.locator('#notice').textContent();
  const meta = await page.locator('#d-meta').innerText();

  // A reply: it shows in the conversation as the customer's.
  await page.getByLabel('回复').fill(reply);
  await page.locator('#f-reply button[type=submit]').click();
  const mine = page.locator('#d-comments li.contact .body', { hasText: reply.slice(0, 8) });
  await mine.waitFor();
  const replySeen = await mine.textContent();
  await shot(page, 'detail');

  // Back to the list: the new ticket is there, its subject shown as text.
  await page.getByRole('link', { name: '返回工单列表' }).click();
  await page.locator('#tickets[data-loaded=true]').waitFor({ state: 'attached' });
  const listSubject = await page.locator('#tickets a', { hasText: number }).locator('.subj').textContent();
  const listStatus = await page.locator('#tickets a', { hasText: number }).locator('.status').textContent();
  await shot(page, 'list');

  // A reload keeps the session (sessionStorage) and lands on the list again.
  await page.reload();
  await page.locator('#tickets[data-loaded=true]').waitFor({ state: 'attached' });
  const afterReload = await probe(page);

  // The used link again, in a fresh browser: the link is refused and a new one can be asked.
  const other = await newPage();
  await other.goto(loginUrl);
  await other.locator('#v-request').waitFor({ state: 'visible' });
  await other.locator('#error').waitFor({ state: 'visible' });
  const usedLinkError = await other.locator('#error').textContent();
  const urlAfterUsedLink = other.url();
  await other.getByLabel('公司代码').fill(tenant);
  await other.getByLabel('邮箱').fill(email);
  await other.locator('#f-request button[type=submit]').click();
  await other.locator('#notice').waitFor({ state: 'visible' });
  const linkRequested = await other.locator('#notice').textContent();
  await shot(other, 'used-link');

  // Sign out: back to the request form, the stored session gone.
  const token = afterReload.session;
  await page.locator('#logout').click();
  await page.locator('#v-request').waitFor({ state: 'visible' });
  const final = await probe(page);
  return {
    url_after_login: urlAfterLogin,
    session_stored: afterLogin.session?.startsWith('tcp_') ?? false,
    who,
    number,
    title,
    created_notice: createdNotice,
    meta,
    reply_seen: replySeen,
    list_subject: listSubject,
    list_status: listStatus,
    session_after_reload: afterReload.session === afterLogin.session,
    used_link_error: usedLinkError,
    url_after_used_link: urlAfterUsedLink,
    link_requested: linkRequested,
    portal_token: token,
    session_after_logout: final.session,
    xss: final.xss,
    xss_after_login: afterLogin.xss,
    images: final.images,
  };
}

async function rate([loginUrl, number, rating, comment]) {
  const page = await newPage();
  await signIn(page, loginUrl);
  await openTicket(page, number);
  const conversation = await page.locator('#d-comments .body').allTextContents();
  const formShown = await page.locator('#f-rate').isVisible();
  await shot(page, 'before');
  await page.locator(`#f-rate label:has(input[value="${rating}"])`).click();
  await page.locator('#f-rate textarea').fill(comment);
  await page.locator('#f-rate button[type=submit]').click();
  await page.locator('#d-rated').waitFor({ state: 'visible' });
  const rated = await page.locator('#d-rated').textContent();
  await shot(page, 'after');
  const formAfter = await page.locator('#f-rate').isVisible();
  const { xss, images } = await probe(page);
  return { conversation, form_shown: formShown, rated, form_after: formAfter, xss, images };
}

async function survey([surveyUrl, rating, comment]) {
  const page = await newPage();
  await page.goto(surveyUrl);
  await page.locator('#v-survey[data-loaded=true]').waitFor({ state: 'attached' });
  const ticket = await page.locator('#s-ticket').textContent();
  const formShown = await page.locator('#f-survey').isVisible();
  let thanks;
  await shot(page, formShown ? 'form' : 'rated');
  if (formShown) {
    const form = page.locator('#f-survey');
    await form.getByLabel(`${rating} · `).check();
    await form.getByLabel('评价（可选）').fill(comment);
    await page.locator('#f-survey button[type=submit]').click();
    await page.locator('#s-thanks').waitFor({ state: 'visible' });
    thanks = await page.locator('#s-thanks').textContent();
  }
  // Opened again: already rated, so only the thank-you.
  await page.reload();
  await page.locator('#v-survey[data-loaded=true]').waitFor({ state: 'attached' });
  const again = await page.locator('#s-thanks').textContent();
  const formAgain = await page.locator('#f-survey').isVisible();
  const { xss, images } = await probe(page);
  return { ticket, form_shown: formShown, thanks, again, form_again: formAgain, xss, images, url: page.url() };
}

const modes = { portal, rate, survey };
let code = 0;
try {
  if (!modes[mode]) throw new Error(`unknown mode ${mode}; use one of: ${Object.keys(modes).join(', ')}`);
  const result = await modes[mode](args);
  process.stdout.write(JSON.stringify({ ...result, problems }) + '\n');
} catch (e) {
  process.stderr.write(`${e.stack || e}\nproblems so far: ${JSON.stringify(problems)}\n`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
