/**
 * The catalogue GET /v1/resource-groups answers, and the ids the API issues: every group once, in
 * the list's order, each with words a person can read, its scope and a product name (never a raw
 * id segment); ids are 20 hex characters that a path parameter check accepts.
 */
import { describe, expect, it } from 'vitest';
import { ID_PATTERN, newId } from '../../functions/src/domain/ids';
import { PRODUCTS, productOf, RESOURCE_GROUP_CATALOGUE } from '../../functions/src/domain/resource-group-catalogue';
import { RESOURCE_GROUPS, scopeOf, supportsTimeFilter } from '../../functions/src/domain/resource-groups';

describe('the resource group catalogue', () => {
  it('names every group once, in order, with a title, a description, its scope, its product and whether times filter it', () => {
    expect(RESOURCE_GROUP_CATALOGUE.map((e) => e.id)).toEqual([...RESOURCE_GROUPS]);
    for (const e of RESOURCE_GROUP_CATALOGUE) {
      expect(e.title.trim(), e.id).not.toBe('');
      expect(e.description, e.id).toMatch(/^[A-Z].*\.$/);
      expect(e.scope).toBe(scopeOf(e.id));
      expect(e.timeFilter).toBe(supportsTimeFilter(e.id));
      expect(Object.values(PRODUCTS), e.id).toContain(e.product);
    }
    expect(new Set(RESOURCE_GROUP_CATALOGUE.map((e) => e.title)).size).toBe(RESOURCE_GROUPS.length);
  });

  it('names a group\u2019s product by its first segment, or shows the segment when it names no known product', () => {
    expect(productOf('youtube.comments')).toBe('YouTube');
    expect(productOf('search_ugc.media.thumbs')).toBe('Search contributions');
    expect(productOf('myactivity.search')).toBe('My Activity');
    expect(productOf('newproduct.things')).toBe('newproduct');
  });
});

describe('ids', () => {
  it('are 20 random hex characters, which the path check accepts', () => {
    const a = newId();
    expect(a).toMatch(ID_PATTERN);
    expect(newId()).not.toBe(a);
    expect(ID_PATTERN.test(`${a}0`)).toBe(false);
    expect(ID_PATTERN.test(a.toUpperCase().replace(/[0-9]/g, 'A'))).toBe(false);
  });
});
