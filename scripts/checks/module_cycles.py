"""Finds import cycles between the top-level modules of each crate (`crate::a` used in
module b and `crate::b` in module a). Exits 1 when any is found."""
import os,re,sys
from collections import defaultdict
def crate_modules(src):
    mods={}
    for dp,dn,fn in os.walk(src):
        for f in fn:
            if not f.endswith('.rs'): continue
            p=os.path.join(dp,f); rel=os.path.relpath(p,src)
            parts=rel[:-3].split(os.sep)
            if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
            mods[p]=parts
    return mods
bad=0
for src in sys.argv[1:]:
    mods=crate_modules(src); g=defaultdict(set)
    for p,parts in mods.items():
        if not parts or parts[0]=='bin': continue
        me=parts[0]
        text=open(p).read()
        text=re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*','',text,flags=re.S)
        for m in re.finditer(r'crate::(\w+)',text):
            if m.group(1)!=me: g[me].add(m.group(1))
        for m in re.finditer(r'\buse crate::\{([^}]*)\}',text):
            for it in m.group(1).split(','):
                it=it.strip().split('::')[0]
                if it and it!=me: g[me].add(it)
    # find cycles via DFS
    nodes=set(g)|{x for v in g.values() for x in v}
    idx={};low={};st=[];on=set();c=[0];sccs=[]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in g.get(v,()):
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v: break
            if len(comp)>1: sccs.append(comp)
    for v in sorted(nodes):
        if v not in idx: sc(v)
    for comp in sccs:
        bad+=1; print(src,'cycle among',sorted(comp),{k:sorted(g[k]&set(comp)) for k in comp})
print('module cycles:',bad)
sys.exit(1 if bad else 0)
