// Opens GraphiQL at GET /graphql in Debian's chromium (playwright-core), as an integrator
// would: the page must load from the server's own files (no CDN, strict CSP), take a bearer
// token in its headers tab and run its default query. tests/api/graphql.rs checks the output,
// one JSON object on the last line.
//
//   node graphiql.mjs <base_url> <token> <screenshot_dir>
import { chromium } from 'playwright-core';

const [base, token, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const problems = [];
const outside = [];
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Introspection before the token is in answers 401, which the browser logs: expected.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console: ${m.text()}`);
    }
  });
  // Every file the page needs comes from the server: none may be missing.
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (r.status() === 404 && path !== '/favicon.ico') problems.push(`404: ${path}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) outside.push(r.url());
  });
  await page.goto(`${base}/graphql`);
  await page.locator('.graphiql-container').waitFor();
  // The headers tab: paste the credential over the placeholder.
  await page.getByRole('button', { name: /headers/i }).click();
  const headers = page.locator('.graphiql-editor-tool .CodeMirror').last();
  await headers.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${token}` }));
  await page.locator('.graphiql-execute-button').click();
  const result = page.locator('.result-window');
  await result.getByText('totalCount').waitFor();
  // CodeMirror renders only the lines in view: read the whole result from the editor itself
  // (the `me.permissions` list alone can push the customers below the fold).
  const text = await result.evaluate((el) => {
    const editor = el.querySelector('.CodeMirror');
    return editor && editor.CodeMirror ? editor.CodeMirror.getValue() : el.innerText;
  });
  await page.screenshot({ path: `${shots}/graphiql.png` });
  console.log(JSON.stringify({ loaded: true, result: text, problems, outside }));
} catch (e) {
  console.log(JSON.stringify({ loaded: false, error: String(e), problems, outside }));
} finally {
  await browser.close();
}
