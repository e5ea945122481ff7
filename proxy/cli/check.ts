// Placeholder: replaced by the full `portail check` (config + every referenced file).
export async function runCheck(_opts: { config: string; json?: boolean }): Promise<number> {
  console.error('portail check: not implemented yet');
  return 1;
}
