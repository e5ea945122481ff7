import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createAuthorizer,
  type PeerCred,
  type RpcGroups,
  requiredAccess,
} from '../../../rpc/authorize.js';
import { createAccounts, parseGroupLine, parseProcStatus } from '../../../rpc/unix-accounts.js';

// A fake system: /etc/passwd, /etc/group and /proc/PID/status under a temporary root.
const PASSWD = `root:x:0:0:root:/root:/bin/bash
alice:x:1000:1000::/home/alice:/bin/bash
heloise:x:1001:2001::/home/heloise:/bin/bash
admin:x:1002:1002::/home/admin:/bin/bash
mallory:x:1003:1003::/home/mallory:/bin/bash
listed:x:1004:1004::/home/listed:/bin/bash
`;
const GROUP = `# comment
root:x:0:
alice:x:1000:
portailers:x:2000:alice
heloise:x:2001:
portail-admins:x:2002:admin
admin:x:1002:
mallory:x:1003:
listed:x:1004:
staff:x:2003:listed,other
`;

function status(uid: number, gid: number, groups: number[]): string {
  return `Name:\tnode\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t1\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t${gid}\t${gid}\t${gid}\t${gid}\nFDSize:\t64\nGroups:\t${groups.join(' ')} \n`;
}

const PROCS: Record<number, string> = {
  // alice: supplementary group portailers (2000)
  100: status(1000, 1000, [1000, 2000]),
  // heloise: primary group heloise (2001), no supplementary group
  101: status(1001, 2001, []),
  // admin: supplementary portail-admins
  102: status(1002, 1002, [1002, 2002]),
  // mallory: nothing
  103: status(1003, 1003, [1003]),
  // a pid now owned by someone else (the caller exited and the pid was reused)
  104: status(0, 0, [0, 2000, 2002]),
  // listed: /proc says no staff membership (session started before being added)
  105: status(1004, 1004, [1004]),
};

const groups: RpcGroups = {
  trustedGroups: ['heloise', 'portailers', 'staff'],
  adminGroups: ['portail-admins'],
};

const call = (method: string) => ({ method, parameters: {} });
const READS = [
  'org.varlink.service.GetInfo',
  'org.varlink.service.GetInterfaceDescription',
  'fr.gouv.portail.Control.GetCurrentBackend',
  'fr.gouv.portail.Control.ListBackends',
  'io.portail.Control.Status',
  'io.portail.Control.Explain',
  'io.portail.Control.RecentDenials',
];
const TRUSTED = ['fr.gouv.portail.Control.SetDefaultBackend', 'io.portail.Control.Reload'];
const ADMIN = ['fr.gouv.portail.Control.UpdateDynamicBackend'];

describe('authorization', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'portail-auth-'));
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), PASSWD);
    writeFileSync(join(root, 'etc/group'), GROUP);
    for (const [pid, text] of Object.entries(PROCS)) {
      mkdirSync(join(root, 'proc', pid), { recursive: true });
      writeFileSync(join(root, 'proc', pid, 'status'), text);
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const level = async (creds: PeerCred | null, g: RpcGroups = groups) => {
    const authorize = createAuthorizer(g, { accounts: createAccounts({ root, useGetent: false }) });
    const ok = async (methods: string[]) => {
      for (const m of methods) if (!(await authorize(creds, call(m)))) return false;
      return true;
    };
    if (!(await ok(READS))) return 'none';
    if (!(await ok(TRUSTED))) {
      assert.equal(await ok(ADMIN), false, 'admin without trusted');
      return 'read';
    }
    return (await ok(ADMIN)) ? 'admin' : 'trusted';
  };

  it('fails closed: unknown methods need the admin level', () => {
    assert.equal(requiredAccess('fr.gouv.portail.Control.Nope'), 'admin');
    assert.equal(requiredAccess('io.portail.Control.Shutdown'), 'admin');
    for (const m of READS) assert.equal(requiredAccess(m), 'read');
    for (const m of TRUSTED) assert.equal(requiredAccess(m), 'trusted');
    for (const m of ADMIN) assert.equal(requiredAccess(m), 'admin');
  });

  it('an outsider and an unknown peer may only read', async () => {
    assert.equal(await level({ pid: 103, uid: 1003, gid: 1003 }), 'read');
    assert.equal(await level(null), 'read');
  });

  it('no configured groups: only root may change anything', async () => {
    const none = { trustedGroups: [], adminGroups: [] };
    assert.equal(await level({ pid: 100, uid: 1000, gid: 1000 }, none), 'read');
    assert.equal(await level({ pid: 999, uid: 0, gid: 0 }, none), 'admin');
  });

  it('root may do everything', async () => {
    assert.equal(await level({ pid: 999, uid: 0, gid: 0 }), 'admin');
  });

  it('trusted by supplementary group, as the kernel lists it', async () => {
    assert.equal(await level({ pid: 100, uid: 1000, gid: 1000 }), 'trusted');
  });

  it('trusted by primary group', async () => {
    assert.equal(await level({ pid: 101, uid: 1001, gid: 2001 }), 'trusted');
  });

  it('admin-groups may also do what trusted-groups may', async () => {
    assert.equal(await level({ pid: 102, uid: 1002, gid: 1002 }), 'admin');
  });

  it('a reused pid is not trusted: falls back to the account databases', async () => {
    // pid 104 now belongs to root with every group; the caller was mallory.
    assert.equal(await level({ pid: 104, uid: 1003, gid: 1003 }), 'read');
    // alice's process is gone: /etc/group lists her in portailers.
    assert.equal(await level({ pid: 104, uid: 1000, gid: 1000 }), 'trusted');
  });

  it('no /proc entry: membership from /etc/group (and the passwd primary group)', async () => {
    assert.equal(await level({ pid: 4000, uid: 1002, gid: 1002 }), 'admin');
    assert.equal(await level({ pid: 4000, uid: 1001, gid: 1001 }), 'trusted');
    assert.equal(await level({ pid: 4000, uid: 1004, gid: 1004 }), 'trusted');
    assert.equal(await level({ pid: 4000, uid: 1003, gid: 1003 }), 'read');
    assert.equal(await level({ pid: 4000, uid: 5555, gid: 5555 }), 'read');
  });

  it('the kernel’s view wins over /etc/group when the process can be inspected', async () => {
    assert.equal(await level({ pid: 105, uid: 1004, gid: 1004 }), 'read');
  });

  it('numeric entries are gids; unknown group names are ignored', async () => {
    assert.equal(
      await level(
        { pid: 103, uid: 1003, gid: 1003 },
        { trustedGroups: ['1003'], adminGroups: ['no-such-group'] },
      ),
      'trusted',
    );
    assert.equal(
      await level(
        { pid: 103, uid: 1003, gid: 1003 },
        { trustedGroups: ['no-such-group'], adminGroups: [] },
      ),
      'read',
    );
  });

  it('follows the configuration when given as a function (reload)', async () => {
    let current: RpcGroups = { trustedGroups: [], adminGroups: [] };
    const authorize = createAuthorizer(() => current, {
      accounts: createAccounts({ root, useGetent: false }),
    });
    const alice = { pid: 100, uid: 1000, gid: 1000 };
    assert.equal(await authorize(alice, call('io.portail.Control.Reload')), false);
    current = groups;
    assert.equal(await authorize(alice, call('io.portail.Control.Reload')), true);
  });
});

describe('account file parsing', () => {
  it('parses /proc/PID/status credentials and rejects truncated ones', () => {
    assert.deepEqual(parseProcStatus(status(5, 6, [7, 8])), {
      uids: [5, 5, 5, 5],
      gids: [6, 6, 6, 6],
      groups: [7, 8],
    });
    assert.deepEqual(
      parseProcStatus('Uid:\t1\t1\t1\t1\nGid:\t2\t2\t2\t2\nGroups:\t\n')?.groups,
      [],
    );
    assert.equal(parseProcStatus('Name:\tx\n'), undefined);
    assert.equal(parseProcStatus('Uid:\t1\nGid:\t2\n'), undefined);
  });

  it('parses group lines and rejects malformed ones', () => {
    assert.deepEqual(parseGroupLine('staff:x:50:a, b,,c'), {
      name: 'staff',
      gid: 50,
      members: ['a', 'b', 'c'],
    });
    assert.deepEqual(parseGroupLine('empty:x:51:'), { name: 'empty', gid: 51, members: [] });
    assert.equal(parseGroupLine('bad:x:notanumber:'), undefined);
    assert.equal(parseGroupLine('short:x'), undefined);
    assert.equal(parseGroupLine(':x:1:'), undefined);
  });

  it('the real system: this process’s groups, root’s name, getent for a known group', async () => {
    const accounts = createAccounts();
    const me = await accounts.processCredentials(process.pid);
    assert.equal(me?.uids[1], process.geteuid?.());
    assert.equal((await accounts.userById(0))?.name, 'root');
    assert.equal((await accounts.groupById(0))?.name, 'root');
    assert.equal(await accounts.groupByName('no-such-group-portail-test'), undefined);
    assert.equal(await accounts.processCredentials(-1), undefined);
  });
});
