/** Where the browser tests write their screenshots, relative to the repository (gitignored; CI keeps it as an artifact). */
export const SCREENSHOTS = "test-results/screenshots/";
