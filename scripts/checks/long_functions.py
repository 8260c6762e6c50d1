"""Lists functions longer than N lines outside tests (a fn at indent k ends at the first
line that is exactly k spaces and `}`: rustfmt's layout). Exits 1 when any is found."""
import re,sys,os
N=int(sys.argv[1]); roots=sys.argv[2:]
found=0
for root in roots:
  for dp,dn,fn in os.walk(root):
    if 'target' in dp or '/tests' in dp or '/benches' in dp: continue
    for f in fn:
      if not f.endswith('.rs'): continue
      p=os.path.join(dp,f); L=open(p).read().split('\n')
      in_test=None
      for i,l in enumerate(L):
        if re.match(r'\s*#\[cfg\(test\)\]',l): in_test=len(l)-len(l.lstrip())
        m=re.match(r'^(\s*)(pub(\([a-z]+\))? )?(async )?(const )?fn (\w+)',l)
        if m and not l.rstrip().endswith(';'):
          ind=m.group(1)
          for j in range(i+1,len(L)):
            if L[j]==ind+'}': break
          n=j-i+1
          if n>N and in_test is None:
            print(f'{p}: fn {m.group(6)} is {n} lines (limit {N})'); found+=1
sys.exit(1 if found else 0)
