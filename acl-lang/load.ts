// Loading an ACL: read the file and its list files, parse, check, compile. The only
// part of acl-lang that does I/O; everything after reading is pure.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { KNOWN_ATTRIBUTES } from './attributes.js';
import { checkAcl, listFilesOf } from './checker.js';
import { type CompiledAcl, compileHir } from './compile.js';
import { makeDiagnostic } from './diagnostics.js';
import type { Hir } from './hir.js';
import { ListFile } from './lists.js';
import { type ParseResult, parseAcl } from './parse.js';
import type { AttrType, Diagnostic } from './types.js';

export interface LoadOptions {
  /** Configured backend names; null/undefined = not checked (no configuration given). */
  backends?: ReadonlySet<string> | null;
  /** Attributes added by context providers, merged over the language's known ones. */
  attributes?: ReadonlyMap<string, AttrType>;
  /**
   * The caller wants the diagnostics, never a decision (`portail check-acl-syntax`): the
   * same diagnostics, but hostname lists are not stored, so the compiled ACL's hostname
   * sets are empty and it must not be evaluated.
   */
  checkOnly?: boolean;
}

export interface LoadResult {
  /** Null when any error was found: the caller keeps its previous ACL (or denies all). */
  acl: CompiledAcl | null;
  diagnostics: Diagnostic[];
  /** Every file read (the ACL, then its lists), for watch-acl. */
  files: string[];
}

export interface SourceOptions extends LoadOptions {
  /** Folder relative paths resolve against (default: the ACL file's folder). */
  baseDir?: string;
  /** Contents of list files by resolved path (tests; loadAclFile reads them). */
  lists?: ReadonlyMap<string, ListFile | { error: string }>;
  fileExists?: (path: string) => boolean;
  /** An earlier parse of the same source (avoids parsing twice). */
  parsed?: ParseResult;
}

function attributeTable(extra?: ReadonlyMap<string, AttrType>): ReadonlyMap<string, AttrType> {
  if (!extra || extra.size === 0) return KNOWN_ATTRIBUTES;
  return new Map([...KNOWN_ATTRIBUTES, ...extra]);
}

/** The checked form of an ACL: the HIR (null on any error) and what it was built from. */
export interface CheckedAcl {
  hir: Hir | null;
  diagnostics: Diagnostic[];
  files: string[];
  /** sha256 of the ACL source (hex). */
  hash: string;
}

/** Parses and checks ACL source text. Pure given `lists`. */
export function checkAclSource(source: string, file: string, opts: SourceOptions = {}): CheckedAcl {
  const baseDir = opts.baseDir ?? dirname(resolve(file));
  const parsed = opts.parsed ?? parseAcl(source, file);
  const lists = opts.lists ?? new Map();
  const checked = checkAcl(parsed.ast, source, file, {
    backends: opts.backends ?? null,
    attributes: attributeTable(opts.attributes),
    baseDir,
    lists,
    fileExists: opts.fileExists,
    checkOnly: opts.checkOnly,
  });
  const diagnostics = [...parsed.diagnostics, ...checked.diagnostics];
  const files = [file, ...lists.keys()];
  const hash = createHash('sha256').update(source).digest('hex');
  const hir = parsed.diagnostics.length > 0 ? null : checked.hir;
  return { hir, diagnostics, files, hash };
}

function compiled(c: CheckedAcl, file: string): LoadResult {
  const { hir, diagnostics, files } = c;
  return { acl: hir ? compileHir(hir, file, c.hash, files) : null, diagnostics, files };
}

/** Parses, checks and compiles ACL source text. Pure given `lists`. */
export function compileAclSource(
  source: string,
  file: string,
  opts: SourceOptions = {},
): LoadResult {
  return compiled(checkAclSource(source, file, opts), file);
}

/**
 * Reads, parses and checks an ACL file and every list file it refers to. Everything but
 * the compilation into closures, so it can run in a worker thread (proxy/state/).
 */
export async function checkAclFile(path: string, opts: LoadOptions = {}): Promise<CheckedAcl> {
  const file = resolve(path);
  let source: string;
  try {
    source = await readFile(file, 'utf8');
  } catch (err) {
    const d = makeDiagnostic(
      'error',
      path,
      '',
      { line: 1, column: 1, length: 1 },
      `cannot read ACL file: ${(err as Error).message}`,
    );
    return { hir: null, diagnostics: [d], files: [file], hash: '' };
  }
  const baseDir = dirname(file);
  // The list files are only known after parsing; a parse of a broken file still
  // yields the blocks before the error, which is enough to find them.
  const lists = new Map<string, ListFile | { error: string }>();
  const parsed = parseAcl(source, path);
  await Promise.all(
    listFilesOf(parsed.ast, baseDir).map(async (p) => {
      try {
        lists.set(p, new ListFile(await readFile(p, 'utf8')));
      } catch (err) {
        lists.set(p, { error: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
      }
    }),
  );
  return checkAclSource(source, path, {
    ...opts,
    baseDir,
    lists,
    parsed,
    fileExists: existsSync,
  });
}

/** Reads and compiles an ACL file and every list file it refers to. */
export async function loadAclFile(path: string, opts: LoadOptions = {}): Promise<LoadResult> {
  return compiled(await checkAclFile(path, opts), path);
}
