import { describe, expect, it } from 'vitest';
import {
  checkPattern,
  createCatalog,
  isValidEventType,
  matchesPattern,
  patternsMatching,
  type EventTypeCatalog,
} from '../../src/domain/eventTypes.ts';

const catalog: EventTypeCatalog = createCatalog([
  { name: 'compliance.case.opened', description: '' },
  { name: 'compliance.case.closed', description: '' },
  { name: 'compliance.screening.hit', description: '' },
  { name: 'kyc.verification.approved', description: '' },
  { name: 'kyc.verification.rejected', description: '' },
  { name: 'kyc.document.uploaded', description: '' },
  { name: 'self_service_invitation.sent', description: '' },
]);

describe('event type grammar', () => {
  it.each(['kyc', 'kyc.verification.approved', 'self_service_invitation.sent', 'a1.b_2.c3'])('accepts %j', (value) => {
    expect(isValidEventType(value)).toBe(true);
  });

  it.each(['', '.', 'kyc.', '.kyc', 'kyc..x', 'KYC.x', 'kyc.X', '1kyc', 'kyc.1x', '_kyc', 'kyc-x', 'kyc x', ' kyc', 'kyc.*', '*'])(
    'refuses %j as an exact type',
    (value) => {
      expect(isValidEventType(value)).toBe(false);
    },
  );

  it('refuses to build a catalog holding an invalid name', () => {
    expect(() => createCatalog([{ name: 'kyc.Verification', description: '' }])).toThrow(/kyc\.Verification/);
  });
});

describe('checkPattern', () => {
  it.each(['kyc.*', 'kyc.verification.*', 'compliance.*', 'compliance.case.opened', 'self_service_invitation.*'])(
    'accepts %j (valid and matching the catalog)',
    (pattern) => {
      expect(checkPattern(pattern, catalog)).toBeUndefined();
    },
  );

  it('gives the root wildcard its own kind of problem', () => {
    expect(checkPattern('*', catalog)).toEqual({ kind: 'root-wildcard' });
  });

  it.each(['**', 'kyc*', '*.x', 'a.*.b', 'kyc..x', 'KYC.*', 'kyc.**', 'kyc.*.*', '.*', 'kyc.', '.kyc', 'kyc.verification.approved ', ' kyc.*', 'kyc-x.*', 'kyc.*x'])(
    'refuses %j as malformed',
    (pattern) => {
      expect(checkPattern(pattern, catalog)).toEqual({ kind: 'malformed' });
    },
  );

  it.each(['foo.*', 'foo', 'kyc.nope', 'kyc.verification', 'kyc.verification.approved.*', 'compliance.case.opened.x'])(
    'refuses %j because it matches no catalog type',
    (pattern) => {
      expect(checkPattern(pattern, catalog)).toEqual({ kind: 'unknown' });
    },
  );
});

describe('matchesPattern', () => {
  it('matches an exact type only against itself', () => {
    expect(matchesPattern('kyc.verification.approved', 'kyc.verification.approved')).toBe(true);
    expect(matchesPattern('kyc.verification.approved', 'kyc.verification.rejected')).toBe(false);
    expect(matchesPattern('kyc.verification', 'kyc.verification.approved')).toBe(false);
  });

  it('matches a segment wildcard at any depth below its prefix', () => {
    expect(matchesPattern('kyc.*', 'kyc.verification')).toBe(true);
    expect(matchesPattern('kyc.*', 'kyc.verification.approved')).toBe(true);
    expect(matchesPattern('kyc.verification.*', 'kyc.verification.approved')).toBe(true);
  });

  it('does not match the prefix itself, a sibling namespace sharing characters, or another namespace', () => {
    expect(matchesPattern('kyc.*', 'kyc')).toBe(false);
    expect(matchesPattern('kyc.*', 'kycx.verification')).toBe(false);
    expect(matchesPattern('kyc.verification.*', 'kyc.verifications.approved')).toBe(false);
    expect(matchesPattern('kyc.*', 'compliance.case.opened')).toBe(false);
  });
});

describe('patternsMatching', () => {
  it('lists the type itself and a wildcard for every proper prefix', () => {
    expect(patternsMatching('kyc.verification.approved').sort()).toEqual(
      ['kyc.verification.approved', 'kyc.*', 'kyc.verification.*'].sort(),
    );
    expect(patternsMatching('kyc')).toEqual(['kyc']);
  });

  it('agrees with matchesPattern on every candidate pattern', () => {
    const types = catalog.types.map((t) => t.name);
    const patterns = ['kyc.*', 'kyc.verification.*', 'kyc.document.*', 'compliance.*', 'compliance.case.*', ...types];
    for (const type of types) {
      const keys = new Set(patternsMatching(type));
      for (const pattern of patterns) expect(keys.has(pattern), `${pattern} vs ${type}`).toBe(matchesPattern(pattern, type));
    }
  });
});
