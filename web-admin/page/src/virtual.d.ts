/**
 * `virtual:hand-pages`, made by the page build (build.ts) from the Hands' page modules it found:
 * what the nav shows of each, and a loader for its chunk. The module is checked when loaded
 * (hand-page.tsx), so its type here is unknown.
 */
declare module 'virtual:hand-pages' {
  const pages: Array<{
    /** the Hand's folder name */
    hand: string;
    id: string;
    label: string;
    section: string | null;
    load(): Promise<{ default?: unknown }>;
  }>;
  export default pages;
}
