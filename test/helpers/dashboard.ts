import type { Page } from "puppeteer-core";

/**
 * Opens a login link in `page` of a tab that holds no session, and accepts the session the
 * dashboard names before entering it, as the person who asked for the link would.
 */
export async function openLoginLink(page: Page, link: string): Promise<void> {
  await page.goto(link);
  await page.waitForSelector("#link-offered");
  await page.click("::-p-text(Continue)");
}
